"""MLflow: the one place the pipeline talks to it.

Store: ``$MLFLOW_TRACKING_URI`` if set, else ``tracking.uri`` from params, else
``sqlite:///<project root>/mlflow.db`` with artifacts in ``<project root>/mlartifacts``. The
project root is ``$DVC_ROOT`` when DVC sets it — for queued experiments that is the parent
repository, not the temporary copy — so every run lands in the store ``mlflow ui`` sees.

Runs: one parent run per pipeline execution (keyed by the whole configuration and the DVC
experiment name) and under it one child run per schedule. Each stage *finds or creates* these by
key, so the train, sample and evaluate stages of one execution fill the same run. A child's key
covers every parameter its outputs depend on; a rerun with changed parameters therefore opens a
new run (MLflow params are immutable and must describe the outputs), which is backfilled with
what upstream stages recorded in DVC's files, so every run is complete.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pandas as pd
from rich.console import Console

from ddpm_study.config import StudyConfig, fingerprint

from . import paths

console = Console(stderr=True)
TAG_KEY = "ddpm.key"
TAG_ROLE = "ddpm.role"
TAG_SCHEDULE = "ddpm.schedule"
TAG_EXPERIMENT = "ddpm.dvc_experiment"
RETRIES = 5


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used. The message names the URI."""


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri(cfg: StudyConfig) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.uri or f"sqlite:///{project_root() / 'mlflow.db'}"


def dvc_experiment() -> str:
    return os.environ.get("DVC_EXP_NAME", "")


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail within seconds, before any training, when the store cannot be used."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).read()
        except (urllib.error.URLError, OSError) as err:
            raise TrackingError(f"MLflow tracking server {uri} is unreachable ({err}); start it or set MLFLOW_TRACKING_URI") from None
    elif uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        if not db.parent.is_dir():
            raise TrackingError(f"MLflow store {uri}: folder {db.parent} does not exist")
        try:
            sqlite3.connect(db, timeout=timeout_s).close()
        except sqlite3.Error as err:
            raise TrackingError(f"MLflow store {uri} cannot be opened ({err})") from None


def _retry(fn: Callable[[], Any], what: str) -> Any:
    """Retry transient store errors (sqlite 'database is locked' under parallel runs, network hiccups)."""
    for attempt in range(RETRIES):
        try:
            return fn()
        except Exception as err:  # MlflowException, OperationalError, ConnectionError ...
            if attempt == RETRIES - 1:
                raise TrackingError(f"MLflow: {what} failed after {RETRIES} tries: {err}") from err
            time.sleep(0.5 * 2**attempt)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


class ScheduleRun:
    """An open child run: a thin wrapper that logs with retries and never raises mid-training."""

    def __init__(self, client, run_id: str, created: bool):
        self.client, self.run_id, self.created = client, run_id, created

    def log_metrics(self, metrics: dict[str, Optional[float]], step: int = 0, critical: bool = False) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self._safe(lambda: self.client.log_batch(self.run_id, metrics=batch), "log metrics", critical)

    def log_artifact(self, path: Path, artifact_path: Optional[str] = None) -> None:
        if path.exists():
            self._safe(lambda: self.client.log_artifact(self.run_id, str(path), artifact_path), f"log {path}", False)

    def last_step(self, key: str) -> int:
        history = _retry(lambda: self.client.get_metric_history(self.run_id, key), f"read {key}")
        return max((m.step for m in history), default=0)

    def _safe(self, fn: Callable[[], Any], what: str, critical: bool) -> None:
        try:
            _retry(fn, what)
        except TrackingError as err:
            if critical:
                raise
            # A long run must not die for a logging hiccup: DVC's metric files still hold everything.
            console.print(f"[yellow]warning:[/] {err} (continuing; DVC's metric files are complete)")


def _find_or_create(client, experiment_id: str, key: str, name: str, tags: dict[str, str]) -> tuple[str, bool]:
    found = _retry(
        lambda: client.search_runs([experiment_id], filter_string=f"tags.`{TAG_KEY}` = '{key}'", max_results=1),
        "search runs",
    )
    if found:
        return found[0].info.run_id, False
    run = _retry(lambda: client.create_run(experiment_id, run_name=name, tags={TAG_KEY: key, **tags}), "create run")
    return run.info.run_id, True


def _experiment_id(client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    def get_or_create() -> str:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return client.create_experiment(name, artifact_location=(project_root() / "mlartifacts").as_uri())
        except MlflowException:  # created by a parallel run in the meantime
            return client.get_experiment_by_name(name).experiment_id

    return _retry(get_or_create, f"open experiment {name!r}")


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive file lock beside a sqlite store (no-op for other stores)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    with open(Path(uri[len("sqlite:///") :]).with_suffix(".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    # MLflow creates and migrates a sqlite store's tables when a client is made; two processes
    # doing it at once (parallel queued experiments) break each other's migration: lock it.
    with _store_lock(uri):
        return _retry(lambda: MlflowClient(tracking_uri=uri), f"open the MLflow store {uri}")


def _open_execution(cfg: StudyConfig):
    """The client, experiment id, execution key and parent run id of this pipeline execution."""
    client = _client(tracking_uri(cfg))
    experiment_id = _experiment_id(client, cfg.tracking.experiment)
    exp_name = dvc_experiment()
    config = cfg.to_dict()
    config.pop("tracking")
    execution_key = fingerprint({"config": config, "dvc_experiment": exp_name})
    parent_id, _ = _find_or_create(
        client, experiment_id, f"execution-{execution_key}", f"{exp_name or 'study'}-{execution_key[:6]}",
        {TAG_ROLE: "execution", TAG_EXPERIMENT: exp_name, "schedules": ",".join(cfg.schedule)},
    )
    return client, experiment_id, execution_key, parent_id


@contextmanager
def _running(run: ScheduleRun) -> Iterator[ScheduleRun]:
    """Mark the run RUNNING, then FINISHED, or FAILED if the stage raises (a divergence, a kill by Ctrl-C)."""
    _retry(lambda: run.client.update_run(run.run_id, status="RUNNING"), "mark run RUNNING")
    try:
        yield run
    except BaseException:
        run._safe(lambda: run.client.set_terminated(run.run_id, "FAILED"), "mark run FAILED", False)
        raise
    run._safe(lambda: run.client.set_terminated(run.run_id, "FINISHED"), "mark run FINISHED", False)


@contextmanager
def schedule_run(cfg: StudyConfig, schedule: str, stage: str) -> Iterator[ScheduleRun]:
    """Find or create this execution's child run for ``schedule`` and hold it open for ``stage``."""
    client, experiment_id, execution_key, parent_id = _open_execution(cfg)
    exp_name = dvc_experiment()
    lineage = cfg.schedule_lineage(schedule)
    key = f"{schedule}-{fingerprint(lineage)}-{execution_key}"
    run_id, created = _find_or_create(
        client, experiment_id, key, f"{exp_name}-{schedule}" if exp_name else schedule,
        {TAG_ROLE: "schedule", TAG_SCHEDULE: schedule, TAG_EXPERIMENT: exp_name, "mlflow.parentRunId": parent_id},
    )
    run = ScheduleRun(client, run_id, created)
    if created:
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in _flatten(lineage).items()]
        _retry(lambda: client.log_batch(run_id, params=params), "log params")
        _backfill(run, schedule, stage)
    with _running(run):
        yield run


@contextmanager
def execution_run(cfg: StudyConfig) -> Iterator[ScheduleRun]:
    """The parent run of this execution (the report stage logs the comparison there)."""
    client, _, _, parent_id = _open_execution(cfg)
    with _running(ScheduleRun(client, parent_id, False)) as run:
        yield run


def log_history(run: ScheduleRun, rows: list[dict[str, Optional[float]]]) -> None:
    """Training rows as ``train/<name>`` metrics at their step, skipping steps the run already holds."""
    done = run.last_step("train/loss")
    for row in rows:
        if row["step"] > done:
            run.log_metrics({f"train/{k}": v for k, v in row.items() if k != "step"}, step=int(row["step"]))


def _backfill(run: ScheduleRun, schedule: str, stage: str) -> None:
    """A run created by a downstream stage gets what upstream stages left in DVC's files."""
    import json

    if stage in ("sample", "evaluate") and paths.train_history(schedule).exists():
        rows = pd.read_csv(paths.train_history(schedule), sep="\t").astype(object)
        log_history(run, [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.to_dict("records")])
        if paths.TRAIN_METRICS.exists():
            run.log_metrics(json.loads(paths.TRAIN_METRICS.read_text()).get(schedule, {}))
    if stage == "evaluate":
        for path in (paths.sample_grid(schedule), paths.sample_gif(schedule), paths.forward_strip(schedule)):
            run.log_artifact(path, "samples")
