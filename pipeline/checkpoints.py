"""Trained models as the stages need them: the training images, a resumable fit with a progress bar,
and a finished checkpoint's EMA network with its diffusion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import torch

from ddpm_study import training
from ddpm_study.config import StudyConfig, image_shape_of
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.errors import CheckpointError, ConfigError

from . import lineage, outputs, params
from .console import progress
from .lineage import other_devices


def training_images(cfg: StudyConfig) -> torch.Tensor:
    """The uint8 training images [N, C, H, W], the first ``data.train_subset`` of them if set."""
    images = torch.from_numpy(outputs.read_prepared("train_images"))
    images = images[: cfg.data.train_subset] if cfg.data.train_subset else images
    if cfg.train.batch_size > len(images):
        raise ConfigError(f"train.batch_size: invalid value {cfg.train.batch_size}; expected at most the "
                          f"{len(images)} training images (data.train_subset)")
    return images


def training_labels(cfg: StudyConfig) -> Optional[torch.Tensor]:
    """The class labels of ``training_images`` for a class-conditional model; None for an unconditional one."""
    if not cfg.model.num_classes:
        return None
    labels = torch.from_numpy(outputs.read_prepared("train_labels"))
    return labels[: cfg.data.train_subset] if cfg.data.train_subset else labels


def fit(cfg: StudyConfig, name: str, *, seed: int, steps: int, lineage: dict[str, Any], checkpoint: Path,
        images: torch.Tensor, device: torch.device, label: str) -> training.TrainResult:
    """Train (or resume, or return finished) schedule ``name`` with ``seed`` up to ``steps``, with a progress bar."""
    with progress() as bar:
        task = bar.add_task(label, total=steps, info="")
        return training.train(
            schedule=name, diffusion=cfg.gaussian_diffusion(name), images=images, model_cfg=cfg.model,
            train_cfg=replace(cfg.train, steps=steps), seed=seed, lineage=lineage, device=device,
            checkpoint_path=checkpoint, other_devices=other_devices(lineage, cfg.train.precision),
            on_step=lambda step: bar.update(task, completed=step),
            on_log=lambda row: bar.update(task, completed=row["step"], info=f"loss {row['loss']:.4f}"),
        )


def load_finished(path: Path, cfg: StudyConfig, run_lineage: dict[str, Any], steps: int,
                  device: torch.device) -> torch.nn.Module:
    """The EMA model of the checkpoint at ``path``, refusing one of another configuration or code, or unfinished
    (a model trained in either precision ``cfg.train.precision`` may resolve to is accepted)."""
    state = training.load_checkpoint(path)
    with params.unrecorded():  # whether the checkpoint is current, not what the stage computes with it
        accepted = lineage.finished_fingerprints(run_lineage, cfg.train.precision)
    if state["lineage_fingerprint"] not in accepted or state["step"] != steps:
        raise CheckpointError(f"{path}: trained with other parameters or code, or unfinished; run `dvc repro` to retrain")
    return training.load_ema_model(state, device)


def load(cfg: StudyConfig, name: str, device: torch.device) -> tuple[torch.nn.Module, GaussianDiffusion]:
    """The EMA model of ``name`` (the main study's) and its diffusion."""
    with params.unrecorded():  # whether the checkpoint is current; the model itself is the `models` dep
        run_lineage, steps = lineage.training(cfg, name), cfg.train.steps
    model = load_finished(outputs.checkpoint(name), cfg, run_lineage, steps, device)
    return model, cfg.gaussian_diffusion(name)


def load_seed(cfg: StudyConfig, name: str, seed: int, device: torch.device) -> torch.nn.Module:
    """The EMA model of ``name`` trained with ``seed``: the main study's for ``cfg.seed``, else the extended study's."""
    if seed == cfg.seed:
        return load(cfg, name, device)[0]
    with params.unrecorded():
        run_lineage, steps = lineage.training(replace(cfg, seed=seed), name), cfg.train.steps
    return load_finished(outputs.seed_checkpoint(name, seed), cfg, run_lineage, steps, device)


def final_loss(result: training.TrainResult) -> float:
    return training.final_loss(result.history)


def logged_model(path: Path) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...], dict[str, Any]]:
    """A checkpoint's EMA network on the CPU, example inputs (x, t[, y]) for torch.export, and its training lineage:
    what an MLflow logged model of it holds (``tracking.ScheduleRun.log_model``), enough to sample it (``generate``)."""
    state = training.load_checkpoint(path)
    model = training.load_ema_model(state, torch.device("cpu"))
    d = state["lineage"]["data"]
    channels, size = image_shape_of(d["dataset"], d.get("image_size", 0), d.get("channels", 0))
    example = (torch.zeros(2, channels, size, size), torch.tensor([0, 1]))
    if model.num_classes:
        example += (torch.tensor([0, model.num_classes]),)  # a class and the null class
    return model, example, state["lineage"]
