"""Stage `train_seeds` (extended study): each schedule of ``extended.seeds.schedules`` trained again with
seeds ``seed + 1``, ..., ``seed + count - 1`` — same data, configuration and code as the main study's
model, which is seed ``seed``. Resumable like `train`."""

from __future__ import annotations

from pathlib import Path

from dataclasses import replace

from ddpm_study.config import StudyConfig
from ddpm_study.runtime import setup_device

from .. import checkpoints, extended_params, lineage, outputs
from ..console import console
from ..params import unrecorded


def run(cfg: StudyConfig, params: Path) -> None:
    ext = extended_params.load(params)
    device = setup_device(cfg.device, cfg.reproducible)
    images = checkpoints.training_images(cfg)
    outputs.SEED_MODELS_DIR.mkdir(parents=True, exist_ok=True)  # the (possibly empty) output folder
    for name in ext.seeds.schedules:
        for seed in ext.seeds.seeds(cfg.seed)[1:]:
            with unrecorded():  # the copy reads every field; its lineage records what the model depends on
                seeded = replace(cfg, seed=seed)
            result = checkpoints.fit(cfg, name, seed=seed, steps=cfg.train.steps, checkpoint=outputs.seed_checkpoint(name, seed),
                                 lineage=lineage.training(seeded, name), images=images, device=device,
                                 label=f"train {name} seed {seed}")
            console.print(f"{name} seed {seed}: final loss {checkpoints.final_loss(result):.4f}")
