"""Stage `check`: the params gate. Validates all of params.yaml, the extended study's section too."""

from __future__ import annotations

from pathlib import Path

from ddpm_study.config import StudyConfig

from .. import extended_params, outputs
from ..console import console


def run(cfg: StudyConfig, params: Path) -> None:
    extended_params.load(params, gate=True)
    outputs.write_params_ok()
    console.print(f"params valid: schedules {', '.join(cfg.schedule)}")
