"""Where is the bits/dim bound's estimate noisy? The full T-term sum of a few test images per main model, and the
variance over t of the `likelihood` stage's stratified estimate for several numbers of exact small-t terms.

For each schedule's EMA model (the main study's, `dvc repro` or `dvc checkout` first) and the first ``--images``
test images, ``likelihood.bits_per_dim`` computes every term L_0 ... L_{T-1} (T model calls per image). With those
terms fixed, the stratified estimate with the first ``e`` terms exact and ``strata`` equal strata of [e, T), one t
drawn uniformly in each and weighted by the stratum's size m, has variance over t of sum over strata of
m^2 Var_{t in stratum}(L_t) (population variance): the part of the stage's spread that the choice of ``e``
removes (the noise draw in each term adds a little on top). Writes benchmarks/likelihood_terms.json.

    python benchmarks/likelihood_terms.py --images 4     # T = 1000 calls per image and schedule
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from ddpm_study import likelihood  # noqa: E402
from pipeline import checkpoints, outputs, params  # noqa: E402

RESULTS = ROOT / "benchmarks" / "likelihood_terms.json"
EXACT = (0, 5, 10, 20, 50, 100)


def stratified_std(terms: np.ndarray, exact: int, count: int) -> float:
    """Std over t of the stratified estimate of ``terms.sum()`` (terms: [T], one image's full set)."""
    var = sum(len(s) ** 2 * terms[s.start:s.stop].var() for s in likelihood.strata(len(terms), count, exact))
    return float(np.sqrt(var))


def main(images: int = typer.Option(4, help="test images per schedule (T model calls each)")):
    cfg = params.load(ROOT / "params.yaml")
    device = torch.device("cpu")
    test = outputs.read_prepared("test_images")
    x0 = torch.from_numpy(test[:images]).float() / 127.5 - 1
    result, t0 = {}, time.perf_counter()
    for name in cfg.schedule:
        model, diffusion = checkpoints.load(cfg, name, device)
        full = likelihood.bits_per_dim(diffusion, model, x0, torch.Generator().manual_seed(cfg.seed))
        terms = full["terms"].numpy().T  # [images, T]
        result[name] = {
            "total": [float(v) for v in full["total"]],
            "first_terms": [float(v) for v in terms.mean(0)[:5]],
            "share_below": {str(e): float(terms[:, :e].sum() / terms.sum()) for e in EXACT if e},
            "estimate_std": {str(e): float(np.mean([stratified_std(row, e, cfg.likelihood.strata) for row in terms]))
                             for e in EXACT},
        }
        print(name, json.dumps(result[name]), flush=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "images": images, "strata": cfg.likelihood.strata, "timesteps": cfg.diffusion.timesteps,
        "seconds": time.perf_counter() - t0, "schedules": result}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
