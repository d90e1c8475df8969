"""Stage `sample`: EMA-model samples, grids, denoising GIFs and forward-process strips per schedule."""

from __future__ import annotations

from pathlib import Path

import time

import torch

from ddpm_study import samplers, sampling
from ddpm_study.config import StudyConfig
from ddpm_study.runtime import setup_device

from .. import checkpoints, outputs, records, tracking
from ..console import progress

FORWARD_ROWS, FORWARD_COLUMNS = 4, 10


def run(cfg: StudyConfig, params: Path) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = setup_device(cfg.device, cfg.reproducible)
    s = cfg.sample
    real = torch.from_numpy(outputs.read_prepared("test_images")[:FORWARD_ROWS])
    for name in cfg.schedule:
        model, diffusion = checkpoints.load(cfg, name, device)
        spaced = samplers.reverse_process(diffusion, s.steps, s.spacing, s.sigma_max)
        with records.schedule_run(cfg, name, "sample") as run, progress() as bar:
            batches = -(-s.num_images // s.batch_size)
            task = bar.add_task(f"sample {name}", total=batches * s.steps, info=f"{s.sampler}, {s.steps} steps")
            start = time.perf_counter()
            out = sampling.generate(
                model, spaced, num_images=s.num_images, batch_size=s.batch_size, image_shape=cfg.image_shape,
                seed=cfg.seed, device=device, sampler=s.sampler, eta=s.eta,
                trajectory_images=min(s.grid_images, s.batch_size), trajectory_frames=s.gif_frames,
                labels=sampling.class_labels(s.num_images, model.num_classes), guidance=s.guidance,
                on_step=lambda n: bar.advance(task),
            )
            elapsed = time.perf_counter() - start
            if model.num_classes:  # one row per class, the same noise down each column
                per_class = max(1, s.grid_images // model.num_classes)
                classes = sampling.class_grid(model, spaced, per_class=per_class, image_shape=cfg.image_shape,
                                              seed=cfg.seed, device=device, sampler=s.sampler, eta=s.eta,
                                              guidance=s.guidance)
                sampling.save_grid(classes, outputs.class_grid(name), nrow=per_class)
            grid, gif, forward = outputs.sample_pictures(name)
            outputs.write_sample_images(name, out.images.numpy())
            sampling.save_grid(out.images[: s.grid_images], grid)
            sampling.save_gif(out.trajectory, gif)
            strip = sampling.forward_strip(diffusion, real, FORWARD_COLUMNS, cfg.seed)
            sampling.save_grid(strip, forward, nrow=FORWARD_COLUMNS)
            outputs.write_sample_info(name, outputs.SampleInfo(sampler=s.sampler, steps=s.steps, eta=s.eta,
                                                               num_images=s.num_images, sample_time_s=elapsed))
            records.record_sample(run, name)
