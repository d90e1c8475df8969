"""What a run depends on, built in this one place.

- ``training(cfg, name)``: every parameter a trained model depends on (``train.precision`` as it
  resolves on this machine, the device type it trains on, and ``reproducible`` where it matters: on
  CUDA), plus the training code's fingerprint. A checkpoint resumes only under the same training lineage, so changing training
  code retrains from scratch (DVC reruns `train` when that code changes; a persisted checkpoint
  must not then be taken as finished).
- ``schedule(cfg, name)``: everything one schedule's outputs depend on; an MLflow schedule run is
  reused only for the same schedule lineage.
- ``execution(cfg)``: the whole configuration; an MLflow execution (parent) run per value.

The code fingerprint hashes the library files the training loop runs: the import closure
(``stage_graph.closure``) of ``ddpm_study/training.py`` and of ``schedules.py`` (the betas' code;
their parameters are in the lineage as values). The config module (``config.py``) and the sampler
registry are outside it: the training loop reads only ``hparams.py``'s sections, and values, not
the code that checks them, are what a model depends on; so a new sampler or sampling/evaluation
parameter retrains nothing. These files are among those ``dvc.yaml`` lists as `train`'s deps
(which also hold the config and the pipeline's own code: DVC reruns `train` for them, and `train`
finds its finished checkpoints current).
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

from ddpm_study.config import StudyConfig, fingerprint
from ddpm_study.runtime import resolve_device, resolve_precision

from . import params
from .stage_graph import ROOT, closure, packages

# Where the data files came from does not change the prepared arrays (DVC tracks their content).
_DATA_SOURCE_KEYS = ("source_dir", "download")


@cache
def training_code() -> tuple[str, ...]:
    """The library files (relative paths, sorted) whose content a trained model depends on."""
    lib = packages(ROOT)["ddpm_study"]
    files = closure([lib / "training.py", lib / "schedules.py"])
    return tuple(sorted(p.relative_to(ROOT).as_posix() for p in files))


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
        for section in ("sample", "evaluate", "sweep", "likelihood"):
            d.pop(section)
        d["data"] = {k: v for k, v in d["data"].items() if k not in _DATA_SOURCE_KEYS}
        # The arithmetic that actually runs: bf16 asked for on a device without native bf16 trains in fp32,
        # and such a checkpoint must not pass for (or resume as) a bf16 one.
        device = resolve_device(cfg.device)
        d["train"]["precision"] = resolve_precision(cfg.train.precision, device)
        # A checkpoint's generator states are of its device's kind, so resuming needs the same device type;
        # and the CPU is deterministic whatever `reproducible` says.
        d["device"] = device.type
        d["reproducible"] = cfg.reproducible or device.type == "cpu"
    params.note_read(d)  # what a checkpoint's fingerprint depends on
    return d


def _variants(d: dict[str, Any], requested_precision: str) -> dict[str, str]:
    """Fingerprint -> device type of lineage ``d`` as it resolves on every kind of machine."""
    precisions = ("bf16", "fp32") if requested_precision == "bf16" else ("fp32",)
    out = {}
    for device in ("cpu", "cuda"):
        for precision in precisions:
            for reproducible in ((True,) if device == "cpu" else (True, False)):
                v = {**d, "device": device, "reproducible": reproducible, "train": {**d["train"], "precision": precision}}
                out[fingerprint(v)] = device
    return out


def finished_fingerprints(d: dict[str, Any], requested_precision: str) -> set[str]:
    """The fingerprints a finished model of training lineage ``d`` may carry when a later stage loads it.

    ``d`` holds what resuming needs: ``train.precision`` as it resolves on *this* machine and this
    machine's device type. A finished model is another matter: bf16 asked for trains in fp32 on a
    machine without native bf16, and a model trained on any kind of machine (pulled from a DVC
    remote, say) serves sampling and evaluation on any machine.
    """
    return set(_variants(d, requested_precision))


def other_devices(d: dict[str, Any], requested_precision: str) -> frozenset[str]:
    """The fingerprints lineage ``d`` carries when trained on another device type: such a checkpoint
    is used when finished and refused (not overwritten) when not (``training.train``)."""
    return frozenset(f for f, device in _variants(d, requested_precision).items() if device != d["device"])


def longer(cfg: StudyConfig, name: str, steps: int) -> dict[str, Any]:
    """``training`` with ``steps`` training steps: the extended study's longer run, whose phases resume each other."""
    d = training(cfg, name)
    d["train"]["steps"] = steps
    return d
