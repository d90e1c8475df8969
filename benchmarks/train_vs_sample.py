"""Training schedule × sampling schedule (issue 9, part 2, first probe): each committed model sampled on
every schedule's noise levels (``ddpm_study.crossing``), from the sweep's x_T and per-step noise,
scored like the sweep (FID against the fixed reference split, paired delete-a-group jackknife).

The diagonal (trained and sampled alike) is the sweep's own cell; its images are regenerated through
the crossed sampler and checked equal to the sweep's, then the sweep's features are used.

Run from the project root after `dvc repro`: ``python benchmarks/train_vs_sample.py [--steps 10]
[--sampler ddpm]``. Writes ``benchmarks/train_vs_sample_<sampler>_<steps>.json`` and prints the grid.
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
from ddpm_study.crossing import crossed  # noqa: E402
from ddpm_study.diffusion import GaussianDiffusion  # noqa: E402
from pipeline import outputs, trained  # noqa: E402
from pipeline.params import load  # noqa: E402


def main(steps: int, sampler: str) -> None:
    cfg = load(outputs.PARAMS)
    sw, device, names = cfg.sweep, torch.device("cpu"), list(cfg.schedule)
    reference = outputs.read_reference().reference
    cell = outputs.Cell(sampler, steps)
    processes = {b: GaussianDiffusion(cfg.betas(b)) for b in names}
    generated, clamps = {}, {}
    for a in names:
        model, diffusion_a = trained.load(cfg, a, device)
        for b in names:
            start = time.perf_counter()
            wrapped, runner, t_real, clamped = crossed(model, diffusion_a, processes[b].respace(steps))
            out = sampling.generate(wrapped, runner, num_images=sw.num_images, batch_size=sw.batch_size,
                                    image_shape=cfg.image_shape, seed=cfg.seed, device=device, sampler=sampler,
                                    eta=sw.eta, trajectory_images=1, trajectory_frames=2)
            clamps[f"{a}<-{b}"] = {"clamped_steps": int(clamped.sum()), "t": [round(float(x), 2) for x in t_real]}
            if a == b:
                same = np.array_equal(out.images.numpy(), outputs.read_sweep_array(a, cell, "images"))
                assert same, f"{a}: the crossed sampler on its own schedule differs from the sweep's {cell.key}"
                generated[f"{a}<-{b}"] = outputs.read_sweep_array(a, cell, "features")
            else:
                generated[f"{a}<-{b}"] = metrics.inception_features(out.images, cfg.evaluate.batch_size, device).numpy()
            print(f"trained {a:>9} sampled on {b:>9}: {clamped.sum()} clamped steps, {time.perf_counter() - start:.0f} s",
                  flush=True)
    jack = uncertainty.jackknife_fid(reference, generated, cfg.evaluate.jackknife_groups, (cfg.seed, 800 + steps))
    fids = {k: uncertainty.frechet_distance(f, reference) for k, f in generated.items()}
    grid = {k: {"fid": fids[k], "fid_std": uncertainty.jackknife_std(jack[k]), **clamps[k]} for k in generated}
    # Paired: each off-diagonal cell against its row's diagonal (same model, own schedule's noise levels).
    for a in names:
        for b in names:
            cmp = uncertainty.compare(fids[f"{a}<-{b}"], fids[f"{a}<-{a}"], jack[f"{a}<-{b}"], jack[f"{a}<-{a}"])
            grid[f"{a}<-{b}"].update(minus_own=cmp["diff"], minus_own_std=cmp["std"])
    print(f"\nFID, {sampler} {steps} steps, N = {sw.num_images}: rows = trained with, columns = sampled on")
    print(" " * 10 + "".join(f"{b:>16}" for b in names))
    for a in names:
        print(f"{a:>10}" + "".join(f"{grid[f'{a}<-{b}']['fid']:>9.1f} ± {grid[f'{a}<-{b}']['fid_std']:<4.1f}" for b in names))
    out = ROOT / "benchmarks" / f"train_vs_sample_{sampler}_{steps}.json"
    out.write_text(json.dumps({"num_images": sw.num_images, "sampler": sampler, "steps": steps, "cells": grid}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    import typer

    def cli(steps: int = 10, sampler: str = "ddpm") -> None:
        main(steps, sampler)

    typer.run(cli)
