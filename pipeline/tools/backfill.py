"""``ddpm-study backfill``: not a stage. Records a finished study that ran elsewhere (a teammate's
``dvc pull``) in this MLflow store: the runs of this execution, found or created, filled from DVC's
files by the functions the stages record with; nothing is recomputed, and a second call adds nothing.
"""

from __future__ import annotations

from pathlib import Path

from ddpm_study.config import StudyConfig

from .. import records


def run(cfg: StudyConfig, params: Path) -> None:
    records.complete_schedule_runs(cfg, "report")
    records.record_execution(cfg, fill=True)
