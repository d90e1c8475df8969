"""Does FID∞ (Chong & Forsyth 2020) remove FID's small-N bias at this study's N? Measured where the answer is
known: two disjoint real splits of Fashion-MNIST come from one distribution, so their FID∞ should be about 0.

Inception features of two real splits of ``--n`` images (the `reference` stage's splits at that N: the committed
reference split is their first images), FID at subset sizes from 1/8 N to N, and the Chong & Forsyth line (and
the quadratic) fitted over the window [N'/4, N'] for every N' up to N: how far from 0 each extrapolates, i.e. what
FID∞ computed from N' samples would report for a perfect generator. Features are cached in .cache/fid_infinity/
(git-ignored). Writes benchmarks/fid_infinity.json.

    python benchmarks/fid_infinity.py            # about 7 min on 2 idle CPU cores at --n 4000 (Inception)
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

from ddpm_study import data, metrics  # noqa: E402
from ddpm_study.fid_infinity import extrapolate, fid_at_sizes  # noqa: E402
from pipeline import outputs, params  # noqa: E402

CACHE = ROOT / ".cache" / "fid_infinity"
RESULTS = ROOT / "benchmarks" / "fid_infinity.json"
DRAWS = 3


def real_features(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = [CACHE / f"real_{split}_{n}_seed{seed}.npy" for split in ("reference", "floor")]
    if not all(p.exists() for p in paths):
        images = outputs.read_prepared("train_images")
        for path, idx in zip(paths, data.real_splits(len(images), n, seed)):
            t = time.perf_counter()
            feats = metrics.inception_features(torch.from_numpy(images[np.sort(idx)]), 50, torch.device("cpu")).numpy()
            np.save(path, feats)
            print(f"{path.name}: {n} images in {time.perf_counter() - t:.0f} s", flush=True)
    return np.load(paths[0]), np.load(paths[1])


def main(n: int = typer.Option(4000, help="images per real split"), seed: int = typer.Option(0)):
    cfg = params.load(ROOT / "params.yaml")
    reference, floor = real_features(n, seed)
    sizes = sorted({n // 8, n // 4, 3 * n // 8, n // 2, 3 * n // 4, n} | {s for s in (250, 500, 1000, 2000) if s <= n})
    t = time.perf_counter()
    fids = fid_at_sizes({"floor": floor}, reference, sizes, DRAWS, (seed, 9200))["floor"]
    seconds = time.perf_counter() - t
    windows = []
    for top in [s for s in sizes if s >= 4 * sizes[0]]:
        inside = [i for i, s in enumerate(sizes) if top / 4 <= s <= top]
        row = {"n": top, "sizes": [sizes[i] for i in inside], "fid_at_n": float(fids[sizes.index(top)].mean())}
        for degree in (1, 2):
            if len(inside) > degree:
                row[f"fid_infinity_degree{degree}"] = extrapolate([sizes[i] for i in inside], fids[inside], degree).value
        windows.append(row)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "dataset": cfg.data.dataset, "features": metrics.FEATURE_EXTRACTOR, "d": int(reference.shape[1]),
        "n": n, "draws": DRAWS, "seconds_fid": seconds,
        "fid": {str(s): [float(v) for v in fids[i]] for i, s in enumerate(sizes)},
        "windows": windows,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for row in windows:
        print(row, flush=True)


if __name__ == "__main__":
    typer.run(main)
