"""Stage `sweep`: quality against sampling cost, for every schedule, sampler and number of steps.

Every cell samples ``sweep.num_images`` images from the *same* initial (and per-step) noise, so
cells differ only by schedule, sampler and step count, and the bootstrap pairs schedules. FID
and KID are against the fixed real reference split; the floor at this N uses the first N images
of the floor split. Each cell keeps its features (for later analysis), its images and a short
denoising trajectory of its first images (the report's same-noise figures).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ddpm_study import metrics, sampling
from ddpm_study.config import StudyConfig
from ddpm_study.files import atomic_path, write_json
from ddpm_study.runtime import resolve_device

from . import paths, tracking
from .evaluate import SWEEP_STREAMS, ceilings, real_vs_real, with_spreads
from .prepare import load_array, save_array
from .sample import load_trained
from .train import diffusion_for
from .ui import console, progress

TRAJECTORY_IMAGES, TRAJECTORY_FRAMES = 4, 9


def run(cfg: StudyConfig) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = resolve_device(cfg.device)
    sw = cfg.sweep
    cells = [(sampler, steps) for sampler in sw.samplers for steps in sorted(sw.steps)]
    features: dict[tuple[str, int], dict[str, np.ndarray]] = {cell: {} for cell in cells}
    timing: dict[tuple[str, str, int], float] = {}
    for name in cfg.schedule:
        model = load_trained(cfg, name, device)
        diffusion = diffusion_for(cfg, name)
        with progress() as bar:
            task = bar.add_task(f"sweep {name}", total=len(cells), info="")
            for sampler, steps in cells:
                bar.update(task, info=f"{sampler} {steps} steps")
                start = time.perf_counter()
                out = sampling.generate(
                    model, diffusion.respace(steps), num_images=sw.num_images, batch_size=sw.batch_size,
                    image_shape=cfg.image_shape, seed=cfg.seed, device=device, sampler=sampler, eta=sw.eta,
                    trajectory_images=min(TRAJECTORY_IMAGES, sw.batch_size), trajectory_frames=TRAJECTORY_FRAMES,
                )
                timing[name, sampler, steps] = time.perf_counter() - start
                feats = metrics.inception_features(out.images, cfg.evaluate.batch_size, device).numpy()
                features[sampler, steps][name] = feats
                save_array(paths.sweep_array(name, sampler, steps, "images"), out.images.numpy())
                save_array(paths.sweep_array(name, sampler, steps, "trajectory"), out.trajectory.numpy())
                save_array(paths.sweep_array(name, sampler, steps, "features"), feats)
                bar.advance(task)

    console.print(f"bootstrap ({cfg.evaluate.bootstrap} resamples per cell) and trivial generators")
    reference = load_array(paths.REFERENCE_FEATURES)
    floor = load_array(paths.FLOOR_FEATURES)[: sw.num_images]
    results: dict = {"num_images": sw.num_images, "bootstrap": cfg.evaluate.bootstrap, "eta": sw.eta,
                     "real_vs_real": real_vs_real(cfg, floor, reference),
                     "ceilings": ceilings(cfg, sw.num_images, reference, device), "cells": {}}
    for i, (sampler, steps) in enumerate(cells):
        cell = with_spreads(cfg, features[sampler, steps], reference, stream=SWEEP_STREAMS + i)
        for name in cfg.schedule:
            cell[name]["sample_time_s"] = timing[name, sampler, steps]
        results["cells"][f"{sampler}_{steps}"] = cell

    for name in cfg.schedule:
        rows = list(tracking.sweep_rows(results, name))
        for sampler in sw.samplers:
            table = pd.DataFrame([{"steps": steps, **row} for s, steps, row in rows if s == sampler])
            with atomic_path(paths.sweep_plot(name, sampler)) as tmp:
                table.to_csv(tmp, sep="\t", index=False)
        with tracking.schedule_run(cfg, name, "sweep") as run:
            for sampler, steps, row in rows:  # MLflow's step axis is the number of sampling steps
                run.log_metrics({f"sweep/{sampler}/{k}": v for k, v in row.items()}, step=steps)
    write_json(paths.SWEEP_METRICS, results)
    for sampler, steps in cells:
        line = "  ".join(f"{n} {results['cells'][f'{sampler}_{steps}'][n]['fid']:.1f}" for n in cfg.schedule)
        console.print(f"{sampler} {steps:>4} steps: FID {line}")
