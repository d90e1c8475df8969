"""Stage `sweep`: samples for quality against sampling cost, every schedule x sampler x budget of network calls.

Every cell samples ``sweep.num_images`` images from the *same* initial noise, so cells differ only
by schedule, sampler, NFE and (conditional models) guidance weight, and schedules are paired
within a cell; a conditional model samples the classes in turn, the same classes in every cell. Each cell keeps its
images, their Inception features and a short denoising trajectory of its first images (the
report's same-noise figures). Scoring is the separate, cheap `score_sweep` stage, so a change of
statistic never resamples.
"""

from __future__ import annotations

from pathlib import Path

from ddpm_study import metrics, samplers, sampling
from ddpm_study.config import StudyConfig
from ddpm_study.runtime import setup_device

from .. import checkpoints, outputs
from ..console import progress

TRAJECTORY_IMAGES, TRAJECTORY_FRAMES = 4, 9


def run(cfg: StudyConfig, params: Path) -> None:
    device = setup_device(cfg.device, cfg.reproducible)
    sw = cfg.sweep
    cells = outputs.sweep_grid(sw)
    for name in cfg.schedule:
        model, diffusion = checkpoints.load(cfg, name, device)
        with progress() as bar:
            task = bar.add_task(f"sweep {name}", total=len(cells), info="")
            for cell in cells:
                bar.update(task, info=f"{cell.setting} {cell.nfe} NFE ({cell.steps} steps)")
                out = sampling.generate(
                    model, samplers.reverse_process(diffusion, cell.steps, sw.spacing, sw.sigma_max), num_images=sw.num_images, batch_size=sw.batch_size,
                    image_shape=cfg.image_shape, seed=cfg.seed, device=device, sampler=cell.sampler, eta=sw.eta,
                    trajectory_images=min(TRAJECTORY_IMAGES, sw.batch_size), trajectory_frames=TRAJECTORY_FRAMES,
                    labels=sampling.class_labels(sw.num_images, model.num_classes), guidance=cell.guidance,
                )
                feats = metrics.inception_features(out.images, cfg.evaluate.batch_size, device).numpy()
                outputs.write_sweep_cell(name, cell, out.images.numpy(), out.trajectory.numpy(), feats)
                bar.advance(task)
