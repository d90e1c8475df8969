"""The jackknife FID arithmetic at N = 5,000 (the GPU configurations' N), before and after issue 27, on this CPU.

Above the feature dimension (2048) every FID works on 2048 x 2048 matrices. Before, each jackknife replicate
recomputed both sides from the features, with a 2048² eigendecomposition for the square root of one side and a
second eigensolve for the trace (numpy, ``frechet_before`` below: the code as it was at commit a780867). After
(``uncertainty.jackknife``), each side's mean, centred features and square root are computed once per set, so a
replicate that drops a group from one side needs the changed side's covariance and one eigenvalue solve, in
torch float64 on the evaluation device.

One timing per implementation of ``--groups`` groups for two paired generated sets against one reference
(synthetic features, 2048-d; only the arithmetic is timed, and it does not depend on the values), the values
checked equal to 1e-6, and the seconds per FID replicate, from which a stage's cost is its replicate count
times that. Writes benchmarks/fid_scaling.json.

    python benchmarks/fid_scaling.py [--n 5000] [--groups 3]
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ddpm_study import uncertainty  # noqa: E402


def frechet_before(x: np.ndarray, y: np.ndarray) -> float:
    """``uncertainty.frechet_distance`` as it was before issue 27 (numpy float64; both sides every call)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mu_x, mu_y = x.mean(0), y.mean(0)
    xc, yc = (x - mu_x) / math.sqrt(len(x) - 1), (y - mu_y) / math.sqrt(len(y) - 1)
    if min(len(x), len(y)) <= x.shape[1]:
        cross = xc @ yc.T
        square = cross @ cross.T if len(x) <= len(y) else cross.T @ cross
    else:
        lam, vec = np.linalg.eigh(xc.T @ xc)
        root = (vec * np.sqrt(np.clip(lam, 0, None))) @ vec.T
        square = root @ (yc.T @ yc) @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(square), 0, None)).sum()
    return float(((mu_x - mu_y) ** 2).sum() + (xc * xc).sum() + (yc * yc).sum() - 2 * trace_sqrt)


def jackknife_before(reference, generated, groups, seed):
    rng = np.random.default_rng(seed)
    n = len(next(iter(generated.values())))
    drop_g, drop_r = np.array_split(rng.permutation(n), groups), np.array_split(rng.permutation(len(reference)), groups)
    out = {k: np.empty((2, groups)) for k in generated}
    for g in range(groups):
        kept = np.delete(reference, drop_r[g], axis=0)
        for k, f in generated.items():
            out[k][0, g] = frechet_before(np.delete(f, drop_g[g], axis=0), reference)
            out[k][1, g] = frechet_before(f, kept)
    return {k: frechet_before(f, reference) for k, f in generated.items()}, out


def main(n: int = typer.Option(5000), groups: int = typer.Option(3), d: int = typer.Option(2048),
         out: Path = typer.Option(ROOT / "benchmarks" / "fid_scaling.json")):
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(d, d)) / math.sqrt(d)  # correlated features, like Inception's
    reference = (rng.normal(size=(n, d)) @ mix).astype(np.float32)
    generated = {s: (rng.normal(size=(n, d)) @ mix + 0.05 * (i + 1)).astype(np.float32) for i, s in enumerate("ab")}
    fids = len(generated) * (1 + 2 * groups)  # point values and replicates
    results = {}
    for name, fn in (("before", jackknife_before), ("after", uncertainty.jackknife)):
        start = time.perf_counter()
        points, reps = fn(reference, generated, groups, 0)
        seconds = time.perf_counter() - start
        results[name] = {"seconds": seconds, "fids": fids, "seconds_per_fid": seconds / fids, "points": points,
                         "replicates": {k: v.tolist() for k, v in reps.items()}}
        print(f"{name}: {seconds:.1f} s for {fids} FIDs ({seconds / fids:.2f} s each)", flush=True)
    worst = max(abs(results["after"]["points"][k] - results["before"]["points"][k]) / results["before"]["points"][k]
                for k in generated)
    report = {
        "machine": {"cpu": platform.processor() or _cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "setting": {"n": n, "d": d, "groups": groups, "generated_sets": len(generated)},
        "seconds_per_fid": {k: v["seconds_per_fid"] for k, v in results.items()},
        "speedup": results["before"]["seconds_per_fid"] / results["after"]["seconds_per_fid"],
        "largest_relative_difference": worst,
    }
    assert worst < uncertainty.EXACT_FID_RTOL, worst
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    typer.run(main)
