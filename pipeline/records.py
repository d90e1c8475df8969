"""What each stage records in MLflow, read from the files the stage wrote: one function per stage.

A stage calls its ``record_<stage>`` right after writing its outputs (live); ``backfill`` calls the
same functions, with ``fill=True``, for every stage upstream of the one that opens a run — DVC may
have restored those stages from its run cache without running them, the run may be new because a
downstream parameter changed, or a tracking outage may have left it partial — so every run holds
the whole lineage of its outputs. A fill adds only what the run lacks (metric steps, files).
Upstream means upstream in ``dvc.yaml`` (``stage_graph.upstream``): DVC has made those files
current before the stage runs.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import Callable, Iterator

from ddpm_study.config import StudyConfig

from . import checkpoints, outputs, stage_graph, tracking
from .tracking import ScheduleRun


def record_train(run: ScheduleRun, schedule: str, fill: bool = False) -> None:
    """Loss history as ``train/<name>`` at its step, the training summary, the checkpoint, and the EMA network
    as an MLflow logged model (``checkpoints.logged_model``; the checkpoint stays the pipeline's source of truth)."""
    run.log_train_rows(outputs.read_train_history(schedule))  # steps the run holds are skipped
    summary = outputs.read_train_metrics().get(schedule)
    if summary is not None:
        run.log_metrics(dataclasses.asdict(summary), fill=fill)
    run.log_artifacts([outputs.checkpoint(schedule)], "model", fill=fill)
    if summary is not None and outputs.checkpoint(schedule).exists():
        run.log_model(schedule, lambda: checkpoints.logged_model(outputs.checkpoint(schedule)),
                      {"final_loss": summary.final_loss})


def record_sample(run: ScheduleRun, schedule: str, fill: bool = False) -> None:
    """Sampling time; the sample grid, denoising GIF and forward-process strip (and per-class grid)."""
    run.log_metrics({"sample_time_s": outputs.read_sample_info(schedule).sample_time_s}, fill=fill)
    classes = [outputs.class_grid(schedule)] if outputs.class_grid(schedule).exists() else []
    run.log_artifacts([*outputs.sample_pictures(schedule), *classes], "samples", fill=fill)


def record_evaluate(run: ScheduleRun, schedule: str, fill: bool = False) -> None:
    """FID ± std, KID ± std, and the real-vs-real floor and N they are read against (and the mean per-class FID)."""
    m = outputs.read_evaluate_metrics()
    if schedule in m.table.scores:
        per_class = {} if m.per_class is None else {"fid_per_class_mean": m.per_class.mean(schedule),
                                                     "fid_per_class_floor": m.per_class.floor_mean}
        run.log_metrics({**dataclasses.asdict(m.table.scores[schedule]), "fid_real_vs_real": m.real_vs_real.fid,
                         "num_images": m.num_images, **per_class}, fill=fill)


def record_likelihood(run: ScheduleRun, schedule: str, fill: bool = False) -> None:
    """Bits/dim on the test split with its standard error, and the prior term in it."""
    m = outputs.read_likelihood_metrics()
    if schedule in m.schedules:
        b = m.schedules[schedule]
        run.log_metrics({"bits_per_dim": b.bpd, "bits_per_dim_std": b.bpd_std, "bits_per_dim_prior": b.prior}, fill=fill)


def record_score_sweep(run: ScheduleRun, schedule: str, fill: bool = False) -> None:
    """``sweep/<sampler>/<score>`` (guided: ``sweep/<sampler>_w<w>/...``), MLflow's step axis the network calls per sample (NFE)."""
    for cell, scores in outputs.read_sweep_metrics().rows(schedule):
        run.log_metrics({f"sweep/{cell.setting}/{k}": v for k, v in dataclasses.asdict(scores).items()},
                        step=cell.nfe, fill=fill)


RECORDS: dict[str, Callable[..., None]] = {
    "train": record_train,
    "sample": record_sample,
    "evaluate": record_evaluate,
    "likelihood": record_likelihood,
    "score_sweep": record_score_sweep,
}


def backfill(run: ScheduleRun, schedule: str, stage: str) -> None:
    """Add to ``run`` what the stages upstream of ``stage`` recorded and the run lacks."""
    for name in stage_graph.upstream(stage):
        if name in RECORDS:
            RECORDS[name](run, schedule, fill=True)


@contextmanager
def schedule_run(cfg: StudyConfig, schedule: str, stage: str) -> Iterator[ScheduleRun]:
    """This execution's run for ``schedule``, open for ``stage``, first filled with what is upstream."""
    with tracking.schedule_run(cfg, schedule) as run:
        backfill(run, schedule, stage)
        yield run


def complete_schedule_runs(cfg: StudyConfig, stage: str) -> None:
    """Fill every schedule's run of this execution with what is upstream of ``stage`` and close it.

    For the last stage: DVC may have restored any earlier stage from its run cache without running
    it, so the runs it would have filled get filled here from DVC's files.
    """
    for name in cfg.schedule:
        with tracking.schedule_run(cfg, name) as run:
            backfill(run, name, stage)


def record_execution(cfg: StudyConfig, fill: bool = False) -> None:
    """The execution's parent run: each schedule's FID as ``<schedule>/fid`` (one chart for the whole
    study in the UI) and the write-up's files."""
    scores = outputs.read_evaluate_metrics().table.scores
    with tracking.execution_run(cfg) as run:
        run.log_metrics({f"{n}/fid": scores[n].fid for n in cfg.schedule}, fill=fill)
        run.log_artifacts(sorted(outputs.REPORT_DIR.iterdir()), "report", fill=fill)
