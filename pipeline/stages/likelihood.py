"""Stage `likelihood`: bits/dim of each schedule's EMA model on the test split (``likelihood``), paired over images."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from ddpm_study import likelihood, sampling, uncertainty
from ddpm_study.config import StudyConfig
from ddpm_study.errors import ConfigError
from ddpm_study.runtime import setup_device

from .. import checkpoints, outputs, records, tracking
from ..console import console, progress


def run(cfg: StudyConfig, params: Path) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = setup_device(cfg.device, cfg.reproducible)
    lk = cfg.likelihood
    test = outputs.read_prepared("test_images")
    if lk.images > len(test):
        raise ConfigError(f"likelihood.images: invalid value {lk.images}; expected an integer in [2, {len(test)}] "
                          f"(the prepared test split's images)")
    x0 = torch.from_numpy(test[: lk.images]).float() / 127.5 - 1  # the decoder's bins: 8-bit pixels on [-1, 1]
    labels = torch.from_numpy(outputs.read_prepared("test_labels")[: lk.images]).long()
    per_image, schedules = {}, {}
    for name in cfg.schedule:
        model, diffusion = checkpoints.load(cfg, name, device)
        generator = torch.Generator().manual_seed(cfg.seed)  # restarted per schedule: the same t and noise (paired)
        parts = []
        with progress() as bar:
            task = bar.add_task(f"bits/dim {name}", total=lk.images, info=f"{lk.exact_terms + lk.strata} terms per image")
            for start in range(0, lk.images, lk.batch_size):
                x, y = x0[start : start + lk.batch_size].to(device), labels[start : start + lk.batch_size].to(device)
                # log p(x | class) for a conditional model (guidance weight 0: the conditional prediction)
                net = sampling.guided(model, y, 0.0) if model.num_classes else model
                parts.append(likelihood.stratified_bits_per_dim(diffusion, net, x, lk.strata, generator, lk.exact_terms))
                bar.advance(task, len(x))
        total, prior = torch.cat([p["total"] for p in parts]).numpy(), torch.cat([p["prior"] for p in parts]).numpy()
        per_image[name] = total
        schedules[name] = outputs.Bits(bpd=float(total.mean()), bpd_std=_standard_error(total), prior=float(prior.mean()))
        console.print(f"{name}: {schedules[name].bpd:.3f} ± {schedules[name].bpd_std:.3f} bits/dim "
                      f"({lk.images} test images, {lk.exact_terms} exact + {lk.strata} sampled of "
                      f"T = {diffusion.num_timesteps} terms each)")
    pairs = {}
    for a, b in combinations(cfg.schedule, 2):
        d = per_image[a] - per_image[b]
        pairs[(a, b)] = outputs.Pair(diff=float(d.mean()), std=_standard_error(d),
                                     within_noise=bool(abs(d.mean()) <= uncertainty.NOISE_SIGMAS * _standard_error(d)))
    outputs.write_likelihood_metrics(outputs.LikelihoodMetrics("test", lk.images, lk.strata, cfg.diffusion.timesteps,
                                                               schedules, pairs, lk.exact_terms))
    for name in cfg.schedule:
        with records.schedule_run(cfg, name, "likelihood") as mlflow_run:
            records.record_likelihood(mlflow_run, name)


def _standard_error(values: np.ndarray) -> float:
    """Over images (independent, each with its own draws of t and noise): the mean's standard error."""
    return float(values.std(ddof=1) / np.sqrt(len(values)))
