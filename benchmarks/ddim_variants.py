"""Why is DDIM worse than DDPM here? Sampler variants on the study's trained models (issue 9, part 1b).

For each schedule and step count, samples the committed EMA model through diffusers' independent
``DDIMScheduler`` (set up on the respaced process, as ``tests/test_ddim_diffusers.py`` checks it
against the project's sampler) from the sweep's own x_T and per-step noise, and scores the samples
like the sweep does (FID against the fixed reference split, delete-a-group jackknife std, paired
difference against the sweep's DDPM cell of the same schedule and steps):

- ``ddim_eta0`` — the project's DDIM (x̂₀ clipped, ε re-derived from it); its images must equal the
  sweep's ``ddim_<steps>`` images (checked, not rescored);
- ``ddim_eta1`` — equal to DDPM ancestral sampling with the posterior variance (algebraically; its
  images must equal the sweep's ``ddpm_<steps>`` images up to float round-off: checked, not rescored);
- ``eta0.5`` — halfway;
- ``eta0_raw_eps`` — x̂₀ clipped but the raw ε kept (diffusers' default);
- ``eta0_unclipped`` — nothing clipped (the DDIM paper's own code).

Run from the project root after `dvc repro` (needs models/, sweep/, data/reference and diffusers:
``pip install diffusers``): ``python benchmarks/ddim_variants.py [--schedules linear,cosine] [--steps 10,50]``.
Writes ``benchmarks/ddim_variants.json`` and prints a table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from ddpm_study import metrics, sampling, uncertainty  # noqa: E402
from ddpm_study.data import to_uint8  # noqa: E402
from pipeline import checkpoints, outputs  # noqa: E402
from pipeline.params import load  # noqa: E402

VARIANTS = {  # name: (eta, clip x0, re-derive eps from the clipped x0)
    "ddim_eta0": (0.0, True, True),
    "ddim_eta1": (1.0, True, True),
    "eta0.5": (0.5, True, True),
    "eta0_raw_eps": (0.0, True, False),
    "eta0_unclipped": (0.0, False, False),
}
CHECKED = {"ddim_eta0": "ddim", "ddim_eta1": "ddpm"}  # variant -> the sweep cell its images must equal


@torch.no_grad()
def diffusers_ddim(model, spaced, x_T, gen, eta, clip=True, rederive=True):
    """Sample ``spaced`` (a respaced GaussianDiffusion) with diffusers' DDIMScheduler, drawing each step's
    noise from ``gen`` as the project's ``sample_loop`` does (tests/test_ddim_diffusers.py checks the match).

    The scheduler runs the respaced process itself — its K "training" timesteps are the K kept ones and
    it steps k -> k - 1 — because diffusers always steps t -> t - T // steps, the project's gap only when
    gaps are uniform. ᾱ is handed over in float64: in float32 the cosine schedule's last respaced β
    rounds to 1. ``rederive``: ε re-derived from the clipped x̂₀ (the project's and improved-diffusion's
    choice; diffusers' ``use_clipped_model_output``)."""
    from diffusers import DDIMScheduler

    K = spaced.num_timesteps
    scheduler = DDIMScheduler(num_train_timesteps=K, trained_betas=spaced.betas_np.astype(np.float32),
                              clip_sample=clip, clip_sample_range=1.0, set_alpha_to_one=True, steps_offset=0,
                              prediction_type="epsilon", timestep_spacing="leading")
    scheduler.alphas_cumprod = torch.from_numpy(spaced.alphas_cumprod_np)
    scheduler.set_timesteps(K)
    assert scheduler.timesteps.tolist() == list(range(K - 1, -1, -1))
    x = x_T
    for k in scheduler.timesteps:
        noise = torch.randn(x.shape, generator=gen)  # the draw the project's sample_loop makes at this step
        eps = model(x, spaced.timestep_map[k].repeat(len(x)))
        x = scheduler.step(eps, int(k), x, eta=eta, use_clipped_model_output=rederive, variance_noise=noise).prev_sample
    return x


def main(schedules: list[str], steps_list: list[int]) -> None:
    cfg = load(outputs.PARAMS)
    sw, device = cfg.sweep, torch.device("cpu")
    reference = outputs.read_reference().reference
    results = {"num_images": sw.num_images, "jackknife_groups": cfg.evaluate.jackknife_groups, "cells": {}}
    for name in schedules:
        model, diffusion = checkpoints.load(cfg, name, device)
        for steps in steps_list:
            spaced = diffusion.respace(steps)
            sweep_feats = {s: outputs.read_sweep_array(name, outputs.Cell(s, steps), "features") for s in ("ddpm", "ddim")}
            generated = dict(sweep_feats)
            for variant, (eta, clip, rederive) in VARIANTS.items():
                start = time.perf_counter()
                images = []
                for b, first in enumerate(range(0, sw.num_images, sw.batch_size)):
                    n = min(sw.batch_size, sw.num_images - first)
                    gen = sampling.batch_generator(cfg.seed, b, device)
                    x_T = torch.randn((n, *cfg.image_shape), generator=gen)
                    images.append(to_uint8(diffusers_ddim(model, spaced, x_T, gen, eta, clip, rederive)))
                images = torch.cat(images)
                if variant in CHECKED:
                    sweep_images = outputs.read_sweep_array(name, outputs.Cell(CHECKED[variant], steps), "images")
                    diff = np.abs(images.numpy().astype(int) - sweep_images.astype(int))
                    results["cells"][f"{name}/{steps}/{variant}"] = {
                        "equals_sweep_cell": CHECKED[variant], "max_pixel_diff": int(diff.max()),
                        "pixels_differing": int((diff > 0).sum()), "pixels": int(diff.size)}
                    print(f"{name} {steps:>3} steps {variant:>15}: vs sweep {CHECKED[variant]} max |Δpixel| "
                          f"{diff.max()} ({(diff > 0).mean():.2e} of pixels)", flush=True)
                    continue
                generated[variant] = metrics.inception_features(images, cfg.evaluate.batch_size, device).numpy()
                print(f"{name} {steps:>3} steps {variant:>15}: sampled + features in {time.perf_counter() - start:.0f} s",
                      flush=True)
            jack = uncertainty.jackknife_fid(reference, generated, cfg.evaluate.jackknife_groups, (cfg.seed, 900 + steps))
            fids = {v: uncertainty.frechet_distance(f, reference) for v, f in generated.items()}
            for variant in generated:
                vs_ddpm = uncertainty.compare(fids[variant], fids["ddpm"], jack[variant], jack["ddpm"])
                results["cells"][f"{name}/{steps}/{variant}"] = {
                    "fid": fids[variant], "fid_std": uncertainty.jackknife_std(jack[variant]),
                    "minus_ddpm": vs_ddpm["diff"], "minus_ddpm_std": vs_ddpm["std"]}
                print(f"{name} {steps:>3} steps {variant:>15}: FID {fids[variant]:6.1f} ± "
                      f"{uncertainty.jackknife_std(jack[variant]):.1f}   − DDPM {vs_ddpm['diff']:+6.1f} ± {vs_ddpm['std']:.1f}",
                      flush=True)
    out = ROOT / "benchmarks" / "ddim_variants.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    import typer

    def cli(schedules: str = "linear,cosine", steps: str = "10,50") -> None:
        main(schedules.split(","), [int(s) for s in steps.split(",")])

    typer.run(cli)
