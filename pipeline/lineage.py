"""What a schedule's outputs depend on: its parameters and the library code that trains it.

A checkpoint resumes only under the same lineage, and an MLflow run is reused only for the same
lineage, so changing training code retrains from scratch (DVC reruns `train` when that code
changes; the persisted checkpoint must not then be taken as finished).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from ddpm_study import data, diffusion, runtime, schedules, training, unet
from ddpm_study.config import StudyConfig

# The modules the `train` stage declares as dependencies in dvc.yaml (tests/test_paths.py checks).
TRAINING_CODE = (schedules, diffusion, unet, training, data, runtime)


@cache
def training_code_fingerprint() -> str:
    h = hashlib.sha256()
    for module in TRAINING_CODE:
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:16]


def training(cfg: StudyConfig, name: str) -> dict[str, Any]:
    return {**cfg.training_lineage(name), "code": training_code_fingerprint()}


def schedule(cfg: StudyConfig, name: str) -> dict[str, Any]:
    return {**cfg.schedule_lineage(name), "code": training_code_fingerprint()}
