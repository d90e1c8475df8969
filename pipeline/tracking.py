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

from ddpm_study.config import StudyConfig, fingerprint

from . import lineage, paths
from .ui import console

TAG_KEY = "ddpm.key"
TAG_ROLE = "ddpm.role"
TAG_SCHEDULE = "ddpm.schedule"
TAG_EXPERIMENT = "ddpm.dvc_experiment"
RETRIES = 5
SUSPEND_S = 60.0  # after a persistent failure, non-critical logging pauses this long

# MLflow's own HTTP client retries for minutes by default; a study must not stall on a dead server.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


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
    """An open MLflow run: logs with retries; non-critical logging never raises mid-training."""

    def __init__(self, client, run_id: str, parent_id: Optional[str] = None):
        self.client, self.run_id, self.parent_id = client, run_id, parent_id
        self._suspended_until = 0.0
        self._last_train_step: Optional[int] = None

    def log_metrics(self, metrics: dict[str, Optional[float]], step: int = 0, critical: bool = False) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self._safe(lambda: self.client.log_batch(self.run_id, metrics=batch), "log metrics", critical)

    def log_train_rows(self, rows: list[dict[str, Optional[float]]]) -> None:
        """Training rows as ``train/<name>`` metrics at their step, skipping steps the run already holds
        (a resumed run replays its history from the checkpoint)."""
        if self._last_train_step is None:
            history = _retry(lambda: self.client.get_metric_history(self.run_id, "train/loss"), "read train/loss")
            self._last_train_step = max((m.step for m in history), default=0)
        for row in rows:
            if row["step"] > self._last_train_step:
                self.log_metrics({f"train/{k}": v for k, v in row.items() if k != "step"}, step=int(row["step"]))
                self._last_train_step = int(row["step"])

    def log_artifact(self, path: Path, artifact_path: Optional[str] = None) -> None:
        if path.exists():
            self._safe(lambda: self.client.log_artifact(self.run_id, str(path), artifact_path), f"log {path}", False)

    def terminate(self, status: str, run_id: Optional[str] = None) -> None:
        run_id = run_id or self.run_id
        self._safe(lambda: self.client.set_terminated(run_id, status), f"mark run {status}", False)

    def _safe(self, fn: Callable[[], Any], what: str, critical: bool) -> None:
        if not critical and time.monotonic() < self._suspended_until:
            return
        try:
            _retry(fn, what)
        except TrackingError as err:
            if critical:
                raise
            # A long run must not die, nor crawl, for a tracking outage: DVC's files hold everything.
            self._suspended_until = time.monotonic() + SUSPEND_S
            console.print(f"[yellow]warning:[/] {err}; MLflow logging paused for {SUSPEND_S:.0f} s "
                          "(training goes on; DVC's metric files are complete)")


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
    from mlflow.entities import Param

    client = _client(tracking_uri(cfg))
    experiment_id = _experiment_id(client, cfg.tracking.experiment)
    exp_name = dvc_experiment()
    config = cfg.to_dict()
    config.pop("tracking")
    config["code"] = lineage.training_code_fingerprint()
    execution_key = fingerprint({"config": config, "dvc_experiment": exp_name})
    parent_id, created = _find_or_create(
        client, experiment_id, f"execution-{execution_key}", f"{exp_name or 'study'}-{execution_key[:6]}",
        {TAG_ROLE: "execution", TAG_EXPERIMENT: exp_name, "schedules": ",".join(cfg.schedule)},
    )
    if created:
        _retry(lambda: client.log_batch(parent_id, params=[Param(k, v) for k, v in _flatten(config).items()]), "log params")
    return client, experiment_id, execution_key, parent_id


@contextmanager
def _running(run: ScheduleRun) -> Iterator[ScheduleRun]:
    """Mark the run RUNNING, then FINISHED; if the stage raises (divergence, Ctrl-C), mark it and
    its execution FAILED."""
    _retry(lambda: run.client.update_run(run.run_id, status="RUNNING"), "mark run RUNNING")
    try:
        yield run
    except BaseException:
        run.terminate("FAILED")
        if run.parent_id:
            run.terminate("FAILED", run.parent_id)
        raise
    run.terminate("FINISHED")


@contextmanager
def schedule_run(cfg: StudyConfig, schedule: str, stage: str) -> Iterator[ScheduleRun]:
    """Find or create this execution's child run for ``schedule`` and hold it open for ``stage``.

    A run created here by a stage after `train` is backfilled from the upstream stages' files.
    """
    client, experiment_id, execution_key, parent_id = _open_execution(cfg)
    exp_name = dvc_experiment()
    run_lineage = lineage.schedule(cfg, schedule)
    key = f"{schedule}-{fingerprint(run_lineage)}-{execution_key}"
    run_id, created = _find_or_create(
        client, experiment_id, key, f"{exp_name}-{schedule}" if exp_name else schedule,
        {TAG_ROLE: "schedule", TAG_SCHEDULE: schedule, TAG_EXPERIMENT: exp_name, "mlflow.parentRunId": parent_id},
    )
    run = ScheduleRun(client, run_id, parent_id)
    if created:
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in _flatten(run_lineage).items()]
        _retry(lambda: client.log_batch(run_id, params=params), "log params")
    if created or stage == "report":
        backfill(run, schedule, before=stage)
    with _running(run):
        yield run


@contextmanager
def execution_run(cfg: StudyConfig) -> Iterator[ScheduleRun]:
    """The parent run of this execution; the report stage logs the comparison there and closes it."""
    client, _, _, parent_id = _open_execution(cfg)
    with _running(ScheduleRun(client, parent_id)) as run:
        yield run


# The stages whose files DVC has made current before each stage runs (dvc.yaml's dependencies).
UPSTREAM = {"train": (), "sample": ("train",), "evaluate": ("train", "sample"), "score_sweep": ("train",),
            "report": ("train", "sample", "evaluate", "score_sweep")}


def backfill(run: ScheduleRun, schedule: str, before: str) -> None:
    """Log into ``run`` what the stages before ``before`` left in DVC's files and the run lacks.

    DVC may skip a stage (its outputs restored from the run cache) or a run may be opened only by a
    later stage; either way every run ends up holding the whole lineage of its outputs. Only
    upstream files are read: DVC has made them current before ``before`` runs.
    """
    import json

    upstream = UPSTREAM[before]
    data = _retry(lambda: run.client.get_run(run.run_id).data, "read run")
    have = set(data.metrics)
    if "train" in upstream:
        if "train/loss" not in have and paths.train_history(schedule).exists():
            rows = pd.read_csv(paths.train_history(schedule), sep="\t").astype(object)
            run.log_train_rows([{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.to_dict("records")])
        if "final_loss" not in have and paths.TRAIN_METRICS.exists():
            run.log_metrics(json.loads(paths.TRAIN_METRICS.read_text()).get(schedule, {}))
        if not _has_artifacts(run, "model"):
            run.log_artifact(paths.checkpoint(schedule), "model")
    if "sample" in upstream:
        if "sample_time_s" not in have and paths.sample_info(schedule).exists():
            run.log_metrics({"sample_time_s": json.loads(paths.sample_info(schedule).read_text())["sample_time_s"]})
        if not _has_artifacts(run, "samples"):
            for path in (paths.sample_grid(schedule), paths.sample_gif(schedule), paths.forward_strip(schedule)):
                run.log_artifact(path, "samples")
    if "evaluate" in upstream and "fid" not in have and paths.EVALUATE_METRICS.exists():
        results = json.loads(paths.EVALUATE_METRICS.read_text())
        if schedule in results:
            run.log_metrics({**results[schedule], "fid_real_vs_real": results["real_vs_real"]["fid"],
                             "num_images": results["num_images"]})
    if "score_sweep" in upstream and not any(k.startswith("sweep/") for k in have) and paths.SWEEP_METRICS.exists():
        for sampler, steps, row in sweep_rows(json.loads(paths.SWEEP_METRICS.read_text()), schedule):
            run.log_metrics({f"sweep/{sampler}/{k}": v for k, v in row.items()}, step=steps)


def sweep_rows(results: dict, schedule: str) -> Iterator[tuple[str, int, dict[str, float]]]:
    """(sampler, steps, scores) of one schedule in the sweep's metrics file."""
    for cell, scores in results["cells"].items():
        if schedule in scores:
            sampler, steps = cell.rsplit("_", 1)
            yield sampler, int(steps), scores[schedule]


def _has_artifacts(run: ScheduleRun, folder: str) -> bool:
    return bool(_retry(lambda: run.client.list_artifacts(run.run_id, folder), f"list {folder}"))
