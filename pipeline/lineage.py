"""What a run depends on, built in this one place.

- ``training(cfg, name)``: every parameter a trained model depends on (``train.precision`` as it
  resolves on this machine), plus the training code's fingerprint. A checkpoint resumes only under the same training lineage, so changing training
  code retrains from scratch (DVC reruns `train` when that code changes; a persisted checkpoint
  must not then be taken as finished).
- ``schedule(cfg, name)``: everything one schedule's outputs depend on; an MLflow schedule run is
  reused only for the same schedule lineage.
- ``execution(cfg)``: the whole configuration; an MLflow execution (parent) run per value.

The code fingerprint hashes the library files the `train` stage runs (``stage_graph.stage_code``):
the same files ``dvc.yaml`` lists as `train`'s library deps.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

from ddpm_study.config import StudyConfig, fingerprint
from ddpm_study.runtime import resolve_device, resolve_precision

from . import params
from .stage_graph import ROOT, stage_code

# Where the data files came from does not change the prepared arrays (DVC tracks their content).
_DATA_SOURCE_KEYS = ("source_dir", "download")


@cache
def training_code() -> tuple[str, ...]:
    """The library files (relative paths) whose content a trained model depends on."""
    return tuple(f for f in stage_code("train") if f.startswith("src/"))


@cache
def code_fingerprint() -> str:
    h = hashlib.sha256()
    for name in training_code():
        h.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return h.hexdigest()[:16]


def execution(cfg: StudyConfig) -> dict[str, Any]:
    """Every parameter but where results are tracked, and the training code."""
    d = cfg.to_dict()
    d.pop("tracking")
    return {**d, "code": code_fingerprint()}


def schedule(cfg: StudyConfig, name: str) -> dict[str, Any]:
    """All sections but other schedules and tracking, and the training code."""
    d = execution(cfg)
    d["schedule"] = name
    d["schedules"] = {name: d["schedules"][name]}
    return d


def training(cfg: StudyConfig, name: str) -> dict[str, Any]:
    """``schedule`` less what only sampling and evaluation read."""
    with params.unrecorded():
        d = schedule(cfg, name)
        for section in ("sample", "evaluate", "sweep"):
            d.pop(section)
        d["data"] = {k: v for k, v in d["data"].items() if k not in _DATA_SOURCE_KEYS}
        # The arithmetic that actually runs: bf16 asked for on a device without native bf16 trains in fp32,
        # and such a checkpoint must not pass for (or resume as) a bf16 one.
        d["train"]["precision"] = resolve_precision(cfg.train.precision, resolve_device(cfg.device))
    params.note_read(d)  # what a checkpoint's fingerprint depends on
    return d


def finished_fingerprints(d: dict[str, Any], requested_precision: str) -> set[str]:
    """The fingerprints a finished model of training lineage ``d`` may carry when a later stage loads it.

    ``d`` holds ``train.precision`` as it resolves on *this* machine, which is what resuming needs. A
    finished model is another matter: bf16 asked for trains in fp32 on a machine without native bf16,
    and a model trained on either kind of machine (pulled from a DVC remote, say) serves sampling
    and evaluation on any machine.
    """
    precisions = ("bf16", "fp32") if requested_precision == "bf16" else ("fp32",)
    return {fingerprint({**d, "train": {**d["train"], "precision": p}}) for p in precisions}


def longer(cfg: StudyConfig, name: str, steps: int) -> dict[str, Any]:
    """``training`` with ``steps`` training steps: the extended study's longer run, whose phases resume each other."""
    d = training(cfg, name)
    d["train"]["steps"] = steps
    return d
