"""Stage `train_longer` (extended study): ``extended.longer.schedule`` trained for the last snapshot's
number of steps, its checkpoint kept at every snapshot.

The learning rate is constant after warm-up and everything random is a function of (seed, step), so
the run is the main study's run continued: its snapshot at ``train.steps`` is the main model, bit for
bit on the same CPU. It is trained in phases, one per snapshot, each resuming the previous one
(resuming is exact: ``ddpm_study.training``); a killed run resumes in the phase it was in.
"""

from __future__ import annotations

from pathlib import Path

import shutil

from ddpm_study import training
from ddpm_study.config import StudyConfig, fingerprint
from ddpm_study.errors import CheckpointError
from ddpm_study.files import atomic_path
from ddpm_study.runtime import setup_device

from .. import checkpoints, extended_params, lineage, outputs
from ..console import console


def _is_snapshot(path, lineage_id: str, step: int) -> bool:
    if not path.exists():
        return False
    state = training.load_checkpoint(path)
    return state["lineage_fingerprint"] == lineage_id and state["step"] == step


def run(cfg: StudyConfig, params: Path) -> None:
    ext = extended_params.load(params)
    device = setup_device(cfg.device, cfg.reproducible)
    images = checkpoints.training_images(cfg)
    name = ext.longer.schedule
    run_lineage = lineage.longer(cfg, name, ext.longer.snapshots[-1])
    lineage_id = fingerprint(run_lineage)
    for step in ext.longer.snapshots:
        snapshot = outputs.longer_snapshot(step)
        if _is_snapshot(snapshot, lineage_id, step):
            continue
        ahead = outputs.LONGER_CHECKPOINT.exists() and training.load_checkpoint(outputs.LONGER_CHECKPOINT)
        if ahead and ahead["lineage_fingerprint"] == lineage_id and ahead["step"] > step:
            raise CheckpointError(f"{outputs.LONGER_CHECKPOINT}: at step {ahead['step']}, past the missing snapshot "
                                  f"{snapshot}; delete {outputs.LONGER_MODELS_DIR} to train the run again")
        result = checkpoints.fit(cfg, name, seed=cfg.seed, steps=step, lineage=run_lineage, checkpoint=outputs.LONGER_CHECKPOINT,
                             images=images, device=device, label=f"train {name} to step {step}")
        with atomic_path(snapshot) as tmp:
            shutil.copyfile(outputs.LONGER_CHECKPOINT, tmp)
        console.print(f"{name}: snapshot at step {step}, final loss {checkpoints.final_loss(result):.4f}")
