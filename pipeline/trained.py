"""A trained schedule as the sampling stages need it: its EMA network and its diffusion."""

from __future__ import annotations

import torch

from ddpm_study import training
from ddpm_study.config import StudyConfig, fingerprint
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.errors import CheckpointError

from . import lineage, outputs


def load(cfg: StudyConfig, name: str, device: torch.device) -> tuple[torch.nn.Module, GaussianDiffusion]:
    """The EMA model of ``name`` and its diffusion, refusing a checkpoint of another configuration
    or code, or an unfinished one."""
    path = outputs.checkpoint(name)
    state = training.load_checkpoint(path)
    if state["lineage_fingerprint"] != fingerprint(lineage.training(cfg, name)) or state["step"] != cfg.train.steps:
        raise CheckpointError(f"{path}: trained with other parameters or code, or unfinished; run `dvc repro` to retrain")
    return training.load_ema_model(state, device), GaussianDiffusion(cfg.betas(name))
