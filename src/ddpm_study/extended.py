"""Typed configuration of the extended study (``extended/dvc.yaml``): training seeds, a longer run
scored along training, and the training-schedule x sampling-schedule grid.

Kept out of ``config.py`` on purpose: that module is part of the training code fingerprint
(``pipeline.lineage``), and a parameter of the extended study must not retrain the main models.
Checked with the same strict loader, against the main configuration it extends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import StudyConfig
from .samplers import SAMPLERS
from .schedules import SCHEDULES
from .strict import build, require


@dataclass(frozen=True)
class SeedsConfig:
    """Training seeds ``seed``, ``seed + 1``, ...; the first is the main study's model."""

    count: int
    schedules: tuple[str, ...]

    def seeds(self, base: int) -> list[int]:
        """Every training seed, the main study's (``base``) first."""
        return [base + k for k in range(self.count)]


@dataclass(frozen=True)
class LongerConfig:
    """One schedule trained for ``snapshots[-1]`` steps; the EMA model at every snapshot is scored."""

    schedule: str
    snapshots: tuple[int, ...]


@dataclass(frozen=True)
class CrossConfig:
    """Every model sampled on every schedule's noise levels (``ddpm_study.crossing``)."""

    samplers: tuple[str, ...]
    steps: tuple[int, ...]


@dataclass(frozen=True)
class ExtendedConfig:
    seeds: SeedsConfig
    longer: LongerConfig
    cross: CrossConfig

    def require_runnable(self, study: StudyConfig) -> None:
        """What the extended study needs of the main one, checked by the extended stages before any work
        but not by the `check` gate: a main-study experiment such as ``dvc exp run -S schedule=cosine``
        or ``-S train.log_every=7`` must not fail on the extended study's values."""
        # Its stages train and sample without labels: the extended study is about the unconditional models.
        require(study.model.num_classes == 0, "model.num_classes", study.model.num_classes,
                "0 for the extended study (extended/dvc.yaml studies unconditional models)")
        listed = ", ".join(study.schedule)
        for i, name in enumerate(self.seeds.schedules):  # seed `seed` of each is the main study's model
            require(name in study.schedule, f"extended.seeds.schedules[{i}]", name,
                    f"one of the schedules this study trains (schedule: {listed})")
        for i, s in enumerate(self.longer.snapshots):
            # A snapshot ends a logging window, so the loss history of the longer run reads like any other.
            require(s % study.train.log_every == 0, f"extended.longer.snapshots[{i}]", s,
                    f"a multiple of train.log_every = {study.train.log_every}")
        T = study.diffusion.timesteps
        for i, steps in enumerate(self.cross.steps):
            require(steps <= T, f"extended.cross.steps[{i}]", steps, f"an integer in [1, diffusion.timesteps = {T}]")

    @classmethod
    def from_dict(cls, raw: Any, study: StudyConfig) -> "ExtendedConfig":
        cfg = build(cls, raw, "extended")
        cfg.check(study)
        return cfg

    def check(self, study: StudyConfig) -> None:
        registered = ", ".join(SCHEDULES)
        require(self.seeds.count >= 1, "extended.seeds.count", self.seeds.count, "an integer >= 1")
        require(len(self.seeds.schedules) >= 1 and len(set(self.seeds.schedules)) == len(self.seeds.schedules),
                "extended.seeds.schedules", list(self.seeds.schedules), f"a non-empty list of distinct names from: {registered}")
        for i, name in enumerate(self.seeds.schedules):
            require(name in SCHEDULES, f"extended.seeds.schedules[{i}]", name, f"one of {registered}")
        require(self.longer.schedule in SCHEDULES, "extended.longer.schedule", self.longer.schedule,
                f"one of {', '.join(SCHEDULES)}")
        snaps = list(self.longer.snapshots)
        require(len(snaps) >= 1 and all(s >= 1 for s in snaps) and snaps == sorted(set(snaps)),
                "extended.longer.snapshots", snaps, "a non-empty, strictly increasing list of training steps >= 1")
        for i, name in enumerate(self.cross.samplers):
            require(name in SAMPLERS, f"extended.cross.samplers[{i}]", name, f"one of {', '.join(SAMPLERS)}")
        require(len(self.cross.samplers) > 0 and len(set(self.cross.samplers)) == len(self.cross.samplers),
                "extended.cross.samplers", list(self.cross.samplers), f"a non-empty list of distinct names from: {', '.join(SAMPLERS)}")
        for i, steps in enumerate(self.cross.steps):
            require(steps >= 1, f"extended.cross.steps[{i}]", steps, "an integer >= 1")
        require(len(self.cross.steps) > 0 and len(set(self.cross.steps)) == len(self.cross.steps),
                "extended.cross.steps", list(self.cross.steps), "a non-empty list of distinct step counts")
