"""MLflow plumbing against a real sqlite store: outages never leave a run RUNNING nor lose what
DVC's files hold, and fills add exactly what a run lacks: every sweep step, the rows an outage
dropped, no step twice after a resume.

Outages are real: a sqlite lock held by another connection (MLflow waits 20 s on it per try, so
only the retry test uses it), or the run's client pointed at a port where no server listens.
"""

import dataclasses
import os
import socket
import sqlite3
import threading
from contextlib import contextmanager

import pytest

from conftest import tiny_params
from ddpm_study.config import StudyConfig
from pipeline import outputs, records, tracking


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """A study configuration whose store is a fresh ``mlflow.db`` in a temporary working folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setattr(tracking, "RETRIES", 2)  # a persistent failure is declared after ~0.5 s
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    p = tiny_params()
    p["schedule"] = ["linear"]
    return StudyConfig.from_dict(p)


@contextmanager
def outage(run: tracking.ScheduleRun):
    """The tracking server is down: the run's client talks to a port where nothing listens."""
    from mlflow.tracking import MlflowClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    live, run.client = run.client, MlflowClient(f"http://127.0.0.1:{port}")

    def restore():
        run.client = live

    try:
        yield restore
    finally:
        restore()


def status(run: tracking.ScheduleRun, run_id=None) -> str:
    return run.client.get_run(run_id or run.run_id).info.status


def steps(run: tracking.ScheduleRun, key: str) -> list[int]:
    return sorted(m.step for m in run.client.get_metric_history(run.run_id, key))


def rows(*at):
    return [{"step": s, "loss": 1.0 / s, "lr": 1e-3, "images_per_s": 100.0, "loss_bucket_0": 0.5} for s in at]


def test_a_brief_outage_is_retried_through(cfg, capsys):
    with tracking.schedule_run(cfg, "linear") as run:
        with outage(run) as restore:
            threading.Timer(0.2, restore).start()  # the server is back before the second try (0.5 s)
            assert run.log_metrics({"transient": 1.0}, step=1)
        assert run.client.get_run(run.run_id).data.metrics["transient"] == 1.0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.slow  # MLflow waits 20 s on a sqlite lock before each try fails
def test_a_locked_store_is_a_warning_not_a_failure(cfg, tmp_path, capsys, monkeypatch):
    """A real sqlite lock held by another connection (parallel queued experiments share one store)
    for longer than every try: a warning, not an exception (training goes on), and the run ends."""
    monkeypatch.setattr(tracking, "RETRIES", 1)
    with tracking.schedule_run(cfg, "linear") as run:
        lock = sqlite3.connect(tmp_path / "mlflow.db", timeout=0, check_same_thread=False)
        lock.execute("BEGIN EXCLUSIVE")
        assert not run.log_metrics({"persistent": 2.0}, step=1)
        lock.rollback()
        lock.close()
        assert "persistent" not in run.client.get_run(run.run_id).data.metrics
    assert "failed after 1 tries" in capsys.readouterr().err
    assert status(run) == "FINISHED"


def test_a_stage_ending_inside_the_logging_pause_still_finishes_its_run(cfg, tmp_path):
    """The bug: ``terminate`` was non-critical, so it was skipped during the pause that follows a
    persistent failure, and the run stayed RUNNING for ever."""
    with tracking.schedule_run(cfg, "linear") as run:
        with outage(run):
            assert not run.log_metrics({"loss": 1.0})
        assert not run.log_metrics({"loss": 2.0})  # the store is back, but logging is paused
    assert status(run) == "FINISHED"


def test_a_stage_failing_inside_the_logging_pause_fails_its_run_and_execution(cfg, tmp_path):
    with pytest.raises(ZeroDivisionError):
        with tracking.schedule_run(cfg, "linear") as run:
            with outage(run):
                run.log_metrics({"loss": 1.0})
            1 / 0
    assert status(run) == "FAILED" and status(run, run.parent_id) == "FAILED"


def write_train_outputs(history):
    outputs.write_train_history("linear", history)
    outputs.write_train_metrics({"linear": outputs.TrainSummary(final_loss=0.1, train_time_s=1.0, steps=8,
                                                                alpha_bar_T=4e-5, log_snr_min=-10.0, log_snr_max=9.2)})


def test_a_history_an_outage_left_partial_is_completed_by_the_next_stage(cfg, tmp_path):
    history = rows(2, 4, 6, 8)
    with tracking.schedule_run(cfg, "linear") as run:  # the train stage, logging live
        run.log_train_rows(history[:1])
        with outage(run):
            assert not run.log_train_rows(history[1:2])  # dropped by the outage
        assert not run.log_train_rows(history[2:3])  # dropped by the pause
        write_train_outputs(history)
        records.record_train(run, "linear")  # still paused: the end-of-stage record is skipped too
    assert steps(run, "train/loss") == [2]
    with records.schedule_run(cfg, "linear", "sample") as again:  # the next stage fills what is missing
        assert again.run_id == run.run_id
    assert steps(again, "train/loss") == [2, 4, 6, 8]
    assert steps(again, "train/loss_bucket_0") == [2, 4, 6, 8]
    assert {"final_loss", "alpha_bar_T"} <= set(again.client.get_run(run.run_id).data.metrics)


def test_a_resumed_run_logs_no_step_twice(cfg):
    with tracking.schedule_run(cfg, "linear") as run:
        run.log_train_rows(rows(2, 4))
    with tracking.schedule_run(cfg, "linear") as resumed:  # a new process replays the checkpoint's history
        for row in rows(2, 4, 6, 8):
            resumed.log_train_rows([row])
        resumed.log_train_rows(rows(2, 4, 6, 8))  # and the end-of-stage record offers all of it again
    history = resumed.client.get_metric_history(run.run_id, "train/loss")
    assert sorted(m.step for m in history) == [2, 4, 6, 8]
    assert {m.step: m.value for m in history} == {r["step"]: r["loss"] for r in rows(2, 4, 6, 8)}


def sweep_metrics():
    def table(fid):
        return outputs.ScoreTable({"linear": outputs.Scores(fid=fid, kid_mean=0.1, kid_std=0.01, fid_std=1.0, precision=0.6,
                                                            precision_std=0.02, recall=0.5, recall_std=0.03,
                                                            fid_inf=fid - 20, fid_inf_std=2.0)}, {})

    cells = {outputs.Cell(s, n): table(100.0 / n + (s == "ddim")) for s in ("ddpm", "ddim") for n in (2, 5, 10)}
    floor = outputs.Scores(fid=30.0, kid_mean=0.0, kid_std=0.01, fid_std=1.0)
    return outputs.SweepMetrics(num_images=12, jackknife_groups=6, real_vs_real=floor, ceilings={}, eta=0.0, cells=cells)


def test_backfill_fills_every_sweep_step_once(cfg):
    m = sweep_metrics()
    outputs.write_sweep_metrics(m, ["linear"], ["ddpm", "ddim"])
    with tracking.schedule_run(cfg, "linear") as run:
        records.record_score_sweep(run, "linear", fill=True)
        records.record_score_sweep(run, "linear", fill=True)  # a second fill adds nothing
    for sampler in ("ddpm", "ddim"):
        for score in (f.name for f in dataclasses.fields(outputs.Scores)):
            history = run.client.get_metric_history(run.run_id, f"sweep/{sampler}/{score}")
            assert sorted(h.step for h in history) == [2, 5, 10], (sampler, score)
        fids = {h.step: h.value for h in run.client.get_metric_history(run.run_id, f"sweep/{sampler}/fid")}
        assert fids == {c.nfe: s.fid for c, s in m.rows("linear") if c.sampler == sampler}


def test_fill_adds_the_files_a_folder_lacks(cfg, tmp_path):
    files = [tmp_path / name for name in ("grid.png", "denoising.gif", "forward.png")]
    for f in files:
        f.write_bytes(f.name.encode())
    with tracking.schedule_run(cfg, "linear") as run:
        run.log_artifacts(files[:1], "samples")
        run.log_artifacts(files, "samples", fill=True)
        listed = sorted(a.path for a in run.client.list_artifacts(run.run_id, "samples"))
    assert listed == ["samples/denoising.gif", "samples/forward.png", "samples/grid.png"]


def test_rows_beyond_one_batch_are_split_between_whole_rows(cfg, monkeypatch):
    """A fill of a long history is packed into few calls, never splitting a row (4 metrics each here)."""
    monkeypatch.setattr(tracking, "MAX_BATCH", 9)  # two rows per call
    with tracking.schedule_run(cfg, "linear") as run:
        calls = []
        log_batch = run.client.log_batch
        monkeypatch.setattr(run.client, "log_batch", lambda *a, **kw: (calls.append(len(kw["metrics"])), log_batch(*a, **kw)))
        assert run.log_train_rows(rows(2, 4, 6, 8, 10))
    assert calls == [8, 8, 4]
    for key in ("train/loss", "train/lr", "train/images_per_s", "train/loss_bucket_0"):
        assert steps(run, key) == [2, 4, 6, 8, 10], key


def test_a_model_that_cannot_be_logged_is_a_warning_and_logging_goes_on(cfg, capsys):
    """A failing export is not a store outage: one warning, no retries, no logging pause, no model; the
    next attempt (the next stage opening the run) logs it."""
    import torch

    from ddpm_study.config import ModelConfig
    from ddpm_study.training import build_model

    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("cannot export")

    def tiny():
        net = build_model(ModelConfig(8, (1, 2), 1, 2, 4, 0.0, 0, "multiply", "eps"), 1).eval()
        return net, (torch.zeros(2, 1, 28, 28), torch.tensor([0, 1])), {"schedule": "linear"}

    with tracking.schedule_run(cfg, "linear") as run:
        run.log_model("linear", broken, {"final_loss": 0.5})
        assert len(calls) == 1 and "the logged model linear was not recorded (cannot export)" in capsys.readouterr().err
        run.log_metrics({"after": 1.0})  # not paused
        experiment = run.client.get_run(run.run_id).info.experiment_id
        assert not run.client.search_logged_models(experiment_ids=[experiment])
        run.log_model("linear", tiny, {"final_loss": 0.5})
        # mlflow.set_tracking_uri sets $MLFLOW_TRACKING_URI: put back, or it would steer every later lookup.
        assert "MLFLOW_TRACKING_URI" not in os.environ
        run.log_model("linear", broken, {"final_loss": 0.5})  # held: not built again
    assert len(calls) == 1 and run.client.get_run(run.run_id).data.metrics["after"] == 1.0
    (model,) = run.client.search_logged_models(experiment_ids=[experiment])
    assert model.status.name == "READY" and model.source_run_id == run.run_id
