"""Stage `train_seeds` (extended study): each schedule of ``extended.seeds.schedules`` trained again with
seeds ``seed + 1``, ..., ``seed + count - 1`` — same data, configuration and code as the main study's
model, which is seed ``seed``. Resumable like `train`."""

from __future__ import annotations

from pathlib import Path

from dataclasses import replace

from ddpm_study.config import StudyConfig
from ddpm_study.runtime import resolve_device

from . import extended_params, lineage, outputs, trained
from .ui import console


def run(cfg: StudyConfig, params: Path) -> None:
    ext = extended_params.load(params)
    device = resolve_device(cfg.device)
    images = trained.training_images(cfg)
    outputs.SEED_MODELS_DIR.mkdir(parents=True, exist_ok=True)  # the (possibly empty) output folder
    for name in ext.seeds.schedules:
        for seed in ext.seeds.seeds(cfg.seed)[1:]:
            result = trained.fit(cfg, name, seed=seed, steps=cfg.train.steps, checkpoint=outputs.seed_checkpoint(name, seed),
                                 lineage=lineage.training(replace(cfg, seed=seed), name), images=images, device=device,
                                 label=f"train {name} seed {seed}")
            console.print(f"{name} seed {seed}: final loss {trained.final_loss(result):.4f}")
