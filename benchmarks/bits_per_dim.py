"""Bits per dimension of the committed models: the full variational bound (Ho et al. 2020, eq. 5; every one of
the T terms, ``ddpm_study.likelihood``) of each schedule's EMA model on the first test images, all schedules on
the same images with the same noise per term, so schedule differences are paired over images.

    python benchmarks/bits_per_dim.py [--images 64] [--strata 50 --repeats 20]   # after `dvc repro train`

``--strata`` also draws the `likelihood` stage's stratified estimate ``repeats`` times per image and reports its
z-score against the full sum (it should be N(0, 1)-like: unbiased).

Writes benchmarks/bits_per_dim.json: per schedule the mean bits/dim with its standard error over images, the
prior term, L_0 and the KL terms summed per tenth of [0, T), and every pair's paired difference.
"""

from __future__ import annotations

import json
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from ddpm_study import likelihood  # noqa: E402
from ddpm_study.uncertainty import NOISE_SIGMAS  # noqa: E402
from pipeline import checkpoints, outputs, params  # noqa: E402


def stratified_check(diffusion, model, x0: torch.Tensor, full: np.ndarray, strata: int, repeats: int, seed: int) -> dict:
    """The stage's estimate (``likelihood.stratified_bits_per_dim``, ``strata`` terms per image) drawn ``repeats``
    times per image against the full sum of the same images: the mean estimate's z-score per image (the full sum
    is one draw of its own noise; its spread over draws is small against the estimate's)."""
    draws = np.stack([likelihood.stratified_bits_per_dim(diffusion, model, x0, strata,
                                                         torch.Generator().manual_seed(seed + 1 + r))["total"].numpy()
                      for r in range(repeats)])
    mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(repeats)
    return {"strata": strata, "repeats": repeats, "estimate_mean": mean.tolist(), "estimate_se": se.tolist(),
            "estimate_std_one_draw": draws.std(0, ddof=1).tolist(), "full": full.tolist(),
            "z": ((mean - full) / se).tolist()}


def main(images: int = typer.Option(64), out: Path = typer.Option(ROOT / "benchmarks" / "bits_per_dim.json"),
         strata: int = typer.Option(0, help="also check the stage's stratified estimate at this many terms per image"),
         repeats: int = typer.Option(20, help="draws of the stratified estimate per image")):
    cfg = params.load(ROOT / "params.yaml")
    device = torch.device("cpu")
    x0 = torch.from_numpy(outputs.read_prepared("test_images")[:images]).float() / 127.5 - 1
    per_image, result = {}, {"images": images, "split": "test", "schedules": {}}
    for name in cfg.schedule:
        model, diffusion = checkpoints.load(cfg, name, device)
        start = time.perf_counter()
        b = likelihood.bits_per_dim(diffusion, model, x0, torch.Generator().manual_seed(cfg.seed))
        per_image[name] = b["total"].numpy()
        tenths = np.array_split(b["terms"][1:].numpy(), 10)  # L_1 .. L_{T-1} by tenth of t
        result["schedules"][name] = {
            "bpd": float(per_image[name].mean()), "bpd_se": float(per_image[name].std(ddof=1) / np.sqrt(images)),
            "prior": float(b["prior"].mean()), "decoder_L0": float(b["terms"][0].mean()),
            "kl_by_tenth": [float(part.sum(0).mean()) for part in tenths], "seconds": time.perf_counter() - start}
        if strata:
            result["schedules"][name]["stratified"] = stratified_check(diffusion, model, x0, per_image[name], strata,
                                                                       repeats, cfg.seed)
            z = result["schedules"][name]["stratified"]["z"]
            print(f"  stratified ({strata} terms, {repeats} draws): z per image {np.round(z, 1).tolist()}", flush=True)
        print(f"{name}: {result['schedules'][name]['bpd']:.3f} ± {result['schedules'][name]['bpd_se']:.3f} bits/dim "
              f"({result['schedules'][name]['seconds']:.0f} s)", flush=True)
    result["pairs"] = {}
    for a, c in combinations(cfg.schedule, 2):
        d = per_image[a] - per_image[c]
        se = float(d.std(ddof=1) / np.sqrt(images))
        result["pairs"][f"{a}-{c}"] = {"diff": float(d.mean()), "std": se,
                                       "within_noise": bool(abs(d.mean()) <= NOISE_SIGMAS * se)}
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    typer.run(main)
