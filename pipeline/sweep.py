"""Stage `sweep`: samples for quality against sampling cost, every schedule x sampler x step count.

Every cell samples ``sweep.num_images`` images from the *same* initial noise, so cells differ only
by schedule, sampler and step count, and schedules are paired within a cell. Each cell keeps its
images, their Inception features and a short denoising trajectory of its first images (the
report's same-noise figures). Scoring is the separate, cheap `score_sweep` stage, so a change of
statistic never resamples.
"""

from __future__ import annotations

from ddpm_study import metrics, sampling
from ddpm_study.config import StudyConfig
from ddpm_study.runtime import resolve_device

from . import paths
from .prepare import save_array
from .sample import load_trained
from .train import diffusion_for
from .ui import progress

TRAJECTORY_IMAGES, TRAJECTORY_FRAMES = 4, 9


def cells(cfg: StudyConfig) -> list[tuple[str, int]]:
    return [(sampler, steps) for sampler in cfg.sweep.samplers for steps in sorted(cfg.sweep.steps)]


def run(cfg: StudyConfig) -> None:
    device = resolve_device(cfg.device)
    sw = cfg.sweep
    for name in cfg.schedule:
        model = load_trained(cfg, name, device)
        diffusion = diffusion_for(cfg, name)
        with progress() as bar:
            task = bar.add_task(f"sweep {name}", total=len(cells(cfg)), info="")
            for sampler, steps in cells(cfg):
                bar.update(task, info=f"{sampler} {steps} steps")
                out = sampling.generate(
                    model, diffusion.respace(steps), num_images=sw.num_images, batch_size=sw.batch_size,
                    image_shape=cfg.image_shape, seed=cfg.seed, device=device, sampler=sampler, eta=sw.eta,
                    trajectory_images=min(TRAJECTORY_IMAGES, sw.batch_size), trajectory_frames=TRAJECTORY_FRAMES,
                )
                feats = metrics.inception_features(out.images, cfg.evaluate.batch_size, device).numpy()
                save_array(paths.sweep_array(name, sampler, steps, "images"), out.images.numpy())
                save_array(paths.sweep_array(name, sampler, steps, "trajectory"), out.trajectory.numpy())
                save_array(paths.sweep_array(name, sampler, steps, "features"), feats)
                bar.advance(task)
