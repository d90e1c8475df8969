"""Stage `sample`: EMA-model samples, grids, denoising GIFs and forward-process strips per schedule."""

from __future__ import annotations

import time

import torch

from ddpm_study import sampling, training
from ddpm_study.config import StudyConfig, fingerprint
from ddpm_study.files import write_json
from ddpm_study.runtime import resolve_device

from . import lineage, paths, tracking
from .prepare import load_array, save_array
from .train import diffusion_for
from .ui import progress

FORWARD_ROWS, FORWARD_COLUMNS = 4, 10


def load_trained(cfg: StudyConfig, name: str, device: torch.device) -> torch.nn.Module:
    """The EMA model of ``name``, refusing a checkpoint trained with another configuration."""
    state = training.load_checkpoint(paths.checkpoint(name))
    if state["lineage_fingerprint"] != fingerprint(lineage.training(cfg, name)) or state["step"] != cfg.train.steps:
        raise training.CheckpointError(
            f"{paths.checkpoint(name)}: trained with other parameters or code, or unfinished; run `dvc repro` to retrain"
        )
    return training.load_ema_model(state, device)


def run(cfg: StudyConfig) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = resolve_device(cfg.device)
    s = cfg.sample
    real = torch.from_numpy(load_array(paths.prepared_array("test_images"))[:FORWARD_ROWS])
    for name in cfg.schedule:
        model = load_trained(cfg, name, device)
        diffusion = diffusion_for(cfg, name)
        spaced = diffusion.respace(s.steps)
        with tracking.schedule_run(cfg, name, "sample") as run, progress() as bar:
            batches = -(-s.num_images // s.batch_size)
            task = bar.add_task(f"sample {name}", total=batches * s.steps, info=f"{s.sampler}, {s.steps} steps")
            start = time.perf_counter()
            out = sampling.generate(
                model, spaced, num_images=s.num_images, batch_size=s.batch_size, image_shape=cfg.image_shape,
                seed=cfg.seed, device=device, sampler=s.sampler, eta=s.eta,
                trajectory_images=min(s.grid_images, s.batch_size), trajectory_frames=s.gif_frames,
                on_step=lambda n: bar.advance(task),
            )
            elapsed = time.perf_counter() - start
            save_array(paths.sample_images(name), out.images.numpy())
            sampling.save_grid(out.images[: s.grid_images], paths.sample_grid(name))
            sampling.save_gif(out.trajectory, paths.sample_gif(name))
            strip = sampling.forward_strip(diffusion, real, FORWARD_COLUMNS, cfg.seed)
            sampling.save_grid(strip, paths.forward_strip(name), nrow=FORWARD_COLUMNS)
            info = {"sampler": s.sampler, "steps": s.steps, "eta": s.eta, "num_images": s.num_images,
                    "sample_time_s": elapsed}
            write_json(paths.sample_info(name), info)
            run.log_metrics({"sample_time_s": elapsed})
            for path in (paths.sample_grid(name), paths.sample_gif(name), paths.forward_strip(name)):
                run.log_artifact(path, "samples")
