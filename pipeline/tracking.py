"""MLflow store and run plumbing: the one place the pipeline talks to MLflow's client.

Store: ``$MLFLOW_TRACKING_URI`` if set, else ``tracking.uri`` from params, else
``sqlite:///<project root>/mlflow.db`` with artifacts in ``<project root>/mlartifacts``. The
project root is ``$DVC_ROOT`` when DVC sets it — for queued experiments that is the parent
repository, not the temporary copy — so every run lands in the store ``mlflow ui`` sees.

Runs: one parent run per pipeline execution (keyed by ``lineage.execution`` and the DVC
experiment name) and under it one child run per schedule (keyed by ``lineage.schedule``). Each
stage *finds or creates* these by key, so the stages of one execution fill the same run; a rerun
with changed parameters opens a new run (MLflow params are immutable and must describe the
outputs). What each stage records, and the filling of a new run with what upstream stages left
in DVC's files, is ``records``'s business.
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
from typing import Any, Callable, Iterable, Iterator, Optional

from ddpm_study.config import StudyConfig, fingerprint
from ddpm_study.errors import StudyError

from . import lineage, params
from .console import console

TAG_KEY = "ddpm.key"
TAG_ROLE = "ddpm.role"
TAG_SCHEDULE = "ddpm.schedule"
TAG_EXPERIMENT = "ddpm.dvc_experiment"
# MLflow 3's experiment type: classic model training, not GenAI. (MLflow 3.17's UI opens on the
# GenAI overview whatever the tag says; the README's links open the runs page directly.)
EXPERIMENT_KIND = "mlflow.experimentKind"
RETRIES = 5
SUSPEND_S = 60.0  # after a persistent failure, non-critical logging pauses this long
MAX_BATCH = 1000  # metrics per log_batch call (MLflow's limit)

# MLflow's own HTTP client retries for minutes by default; a study must not stall on a dead server.
# Applied (unless the user set them) when a client is made, not at import.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class TrackingError(StudyError, RuntimeError):
    """The tracking store cannot be reached or used. The message names the URI."""


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri(cfg: StudyConfig) -> str:
    with params.unrecorded():  # where results are recorded, not what they are
        configured = cfg.tracking.uri
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or f"sqlite:///{project_root() / 'mlflow.db'}"


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
    """An open MLflow run: logs with retries; non-critical logging never raises mid-training.

    With ``fill=True`` the logging methods add only what the run lacks — a metric at a step it does not
    hold, a file its folder does not hold — so backfill completes a new run or one an outage left
    partial; without, they log (a stage's own, live results, which replace earlier values).

    After a persistent store failure, non-critical logging pauses for ``SUSPEND_S`` (a long run must
    neither die nor crawl through retries for a tracking outage; DVC's files hold everything, and
    the next fill adds what the pause skipped). Closing the run (``terminate``) is never paused.
    """

    def __init__(self, client, run_id: str, parent_id: Optional[str] = None):
        self.client, self.run_id, self.parent_id = client, run_id, parent_id
        self._suspended_until = 0.0
        self._held: dict[str, set[int]] = {}  # metric key -> the steps the run holds (read once, then kept)

    def held_steps(self, key: str) -> set[int]:
        """The steps at which the run holds metric ``key``."""
        if key not in self._held:
            history = self.client.get_metric_history(self.run_id, key)
            self._held[key] = {m.step for m in history}
        return self._held[key]

    def _log_batch(self, metrics: list) -> None:
        for start in range(0, len(metrics), MAX_BATCH):
            chunk = metrics[start : start + MAX_BATCH]
            self.client.log_batch(self.run_id, metrics=chunk)
            for m in chunk:  # only what landed counts as held
                if m.key in self._held:
                    self._held[m.key].add(m.step)

    def log_metrics(self, metrics: dict[str, Optional[float]], step: int = 0, critical: bool = False,
                    fill: bool = False) -> bool:
        """Log ``metrics`` at ``step``; with ``fill``, only those the run lacks at that step.
        Returns whether the store took them (False while logging is paused or after a failure)."""
        from mlflow.entities import Metric

        def log() -> None:
            now = int(time.time() * 1000)
            self._log_batch([Metric(k, float(v), now, step) for k, v in metrics.items()
                             if v is not None and not (fill and step in self.held_steps(k))])

        return self._safe(log, "log metrics", critical)

    def log_train_rows(self, rows: list[dict[str, Optional[float]]]) -> bool:
        """Training rows as ``train/<name>`` metrics at their step, skipping the steps the run holds:
        a resumed run replays its history from the checkpoint, and a fill after an outage adds
        only the rows the outage dropped."""
        from mlflow.entities import Metric

        def log() -> None:
            held = self.held_steps("train/loss")
            now = int(time.time() * 1000)
            batch: list = []
            for row in rows:
                step = int(row["step"])
                if step in held:
                    continue
                metrics = [Metric(f"train/{k}", float(v), now, step) for k, v in row.items() if k != "step" and v is not None]
                if len(batch) + len(metrics) > MAX_BATCH:  # whole rows per call: a row lands whole or not at all
                    self._log_batch(batch)
                    batch = []
                batch += metrics
            self._log_batch(batch)

        return self._safe(log, "log the training curve", False)

    def log_artifacts(self, paths: Iterable[Path], folder: str, fill: bool = False) -> None:
        """Each existing file of ``paths`` into the run's ``folder`` (with ``fill``: those it lacks)."""
        def log() -> None:
            held = ({Path(a.path).name for a in self.client.list_artifacts(self.run_id, folder)} if fill else set())
            for path in paths:
                if path.exists() and path.name not in held:
                    self.client.log_artifact(self.run_id, str(path), folder)
                    held.add(path.name)

        self._safe(log, f"log {folder}/", False)

    def log_model(self, name: str, build: Callable[[], tuple[Any, tuple, dict[str, Any]]], metrics: dict[str, float]) -> None:
        """The network ``build()`` gives (with example inputs and its params) as an MLflow 3 logged model linked to
        this run (the experiment's *Models* tab), with ``metrics``; built only when the run lacks one; saved in torch.export's pt2 format (no pickle), its batch size free, loadable with
        ``mlflow.pytorch.load_model("models:/<id>")``. Once per run: a run holding a READY model gets no other."""
        def log() -> None:
            import mlflow
            import mlflow.pytorch
            from mlflow.entities import LoggedModelStatus
            from mlflow.models import ModelSignature
            from mlflow.types import Schema, TensorSpec

            experiment_id = self.client.get_run(self.run_id).info.experiment_id
            held = self.client.search_logged_models(experiment_ids=[experiment_id],
                                                    filter_string=f"source_run_id = '{self.run_id}'")
            if any(m.status == LoggedModelStatus.READY for m in held):
                return
            model, example, params = build()
            arrays = tuple(a.numpy() for a in example)
            signature = ModelSignature(inputs=Schema([TensorSpec(a.dtype, (-1, *a.shape[1:]), n)
                                                      for n, a in zip(("x", "t", "y"), arrays)]))
            logged = self.client.create_logged_model(experiment_id, name=name, source_run_id=self.run_id,
                                                     params=_flatten(params))
            with fluent_store(self.client.tracking_uri):  # log_model goes through the fluent API's store
                mlflow.pytorch.log_model(model, name=name, model_id=logged.model_id, signature=signature,
                                         input_example=arrays, pip_requirements=[])
            for key, value in metrics.items():
                self.client.log_metric(self.run_id, key, value, model_id=logged.model_id)
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)

        # Not through _safe's retries and pause: an export that fails fails again, and must not silence the
        # stage's other logging. The next stage that opens the run tries again (a PENDING model is no model).
        if time.monotonic() < self._suspended_until:
            return
        try:
            log()
        except Exception as err:
            console.print(f"[yellow]warning:[/] MLflow: the logged model {name} was not recorded "
                          f"({' '.join(str(err).split())[:300]})", highlight=False)

    @contextmanager
    def system_metrics(self) -> Iterator[None]:
        """Log CPU, memory, disk, network (and, with nvidia-ml-py and a GPU, GPU) use to this run while
        the body runs, as ``system/*`` metrics (MLflow's monitor; every
        ``$MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds, 10 by default). Never fails the body."""
        monitor = None
        try:
            import logging

            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines per schedule
            monitor = SystemMetricsMonitor(self.run_id, resume_logging=True, tracking_uri=self.client.tracking_uri)
            monitor.start()
        except Exception as err:  # psutil missing, a store outage ...
            console.print(f"[yellow]warning:[/] MLflow: no system metrics ({err})", highlight=False)
            monitor = None
        try:
            yield
        finally:
            if monitor is not None:
                try:
                    monitor.finish()
                except Exception as err:
                    console.print(f"[yellow]warning:[/] MLflow: system metrics not flushed ({err})", highlight=False)

    def terminate(self, status: str, run_id: Optional[str] = None) -> None:
        """Mark the run (or ``run_id``) FINISHED or FAILED: tried even while logging is paused, since
        a run left RUNNING would show as running for ever. If the store is still unreachable, the
        warning says so; the next stage of this execution that reaches the store closes the run."""
        run_id = run_id or self.run_id
        self._safe(lambda: self.client.set_terminated(run_id, status), f"mark run {run_id} {status}", False,
                   paused_too=True)

    def _safe(self, fn: Callable[[], Any], what: str, critical: bool, paused_too: bool = False) -> bool:
        if not (critical or paused_too) and time.monotonic() < self._suspended_until:
            return False
        try:
            _retry(fn, what)
            return True
        except TrackingError as err:
            if critical:
                raise
            self._suspended_until = time.monotonic() + SUSPEND_S
            console.print(f"[yellow]warning:[/] {err}; MLflow logging paused for {SUSPEND_S:.0f} s "
                          "(training goes on; DVC's metric files are complete and fill the run later)")
            return False


@contextmanager
def fluent_store(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``mlflow.pytorch.log_model``/``load_model``) pointed at ``uri`` inside, and put back
    after: ``mlflow.set_tracking_uri`` also sets ``$MLFLOW_TRACKING_URI``, which would outlive the call and
    steer every later store lookup of the process (``tracking_uri`` reads that variable first)."""
    import mlflow

    before, variable = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable


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
        # A local store keeps artifacts beside it; a tracking server picks its own (proxied) store.
        local = not client.tracking_uri.startswith(("http://", "https://"))
        try:
            return client.create_experiment(name, artifact_location=(project_root() / "mlartifacts").as_uri() if local else None,
                                            tags={EXPERIMENT_KIND: "custom_model_development"})
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

    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)

    # MLflow creates and migrates a sqlite store's tables when a client is made; two processes
    # doing it at once (parallel queued experiments) break each other's migration: lock it.
    with _store_lock(uri):
        return _retry(lambda: MlflowClient(tracking_uri=uri), f"open the MLflow store {uri}")


def _open_execution(cfg: StudyConfig):
    """The client, experiment id, execution key and parent run id of this pipeline execution."""
    from mlflow.entities import Param

    with params.unrecorded():  # where and under which name the run is recorded: no output depends on it
        uri, experiment, config = tracking_uri(cfg), cfg.tracking.experiment, lineage.execution(cfg)
        schedules = ",".join(cfg.schedule)
    client = _client(uri)
    experiment_id = _experiment_id(client, experiment)
    exp_name = dvc_experiment()
    execution_key = fingerprint({"config": config, "dvc_experiment": exp_name})
    parent_id, created = _find_or_create(
        client, experiment_id, f"execution-{execution_key}", f"{exp_name or 'study'}-{execution_key[:6]}",
        {TAG_ROLE: "execution", TAG_EXPERIMENT: exp_name, "schedules": schedules},
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
def schedule_run(cfg: StudyConfig, schedule: str) -> Iterator[ScheduleRun]:
    """Find or create this execution's child run for ``schedule`` and hold it open (RUNNING, then
    FINISHED; FAILED with its execution if the body raises)."""
    client, experiment_id, execution_key, parent_id = _open_execution(cfg)
    exp_name = dvc_experiment()
    with params.unrecorded():
        run_lineage = lineage.schedule(cfg, schedule)
    key = f"{schedule}-{fingerprint(run_lineage)}-{execution_key}"
    run_id, created = _find_or_create(
        client, experiment_id, key, f"{exp_name}-{schedule}" if exp_name else schedule,
        {TAG_ROLE: "schedule", TAG_SCHEDULE: schedule, TAG_EXPERIMENT: exp_name, "mlflow.parentRunId": parent_id},
    )
    if created:
        from mlflow.entities import Param

        logged = [Param(k, v) for k, v in _flatten(run_lineage).items()]
        _retry(lambda: client.log_batch(run_id, params=logged), "log params")
    with _running(ScheduleRun(client, run_id, parent_id)) as run:
        yield run


@contextmanager
def execution_run(cfg: StudyConfig) -> Iterator[ScheduleRun]:
    """The parent run of this execution; the report stage logs the comparison there and closes it."""
    client, _, _, parent_id = _open_execution(cfg)
    with _running(ScheduleRun(client, parent_id)) as run:
        yield run


def tag_execution(cfg: StudyConfig, tags: dict[str, str]) -> None:
    """Set tags on this execution's parent run, leaving its status alone (the `prepare` stage records where
    the data came from). Not critical: a store that cannot be reached is a warning, the stage goes on."""
    try:
        client, _, _, parent_id = _open_execution(cfg)
        for key, value in tags.items():
            _retry(lambda: client.set_tag(parent_id, key, value), f"tag the execution run with {key}")
    except TrackingError as err:
        console.print(f"[yellow]warning:[/] {err}; the execution run lacks the tags {', '.join(tags)}")
