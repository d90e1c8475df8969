"""How well do bootstrap and jackknife spreads of FID match the spread over true redraws?

Synthetic correlated Gaussian features (as in tests/test_uncertainty.py), generated set shifted by
0.1; "truth" is the std of FID over 80 independent redraws of both the generated and the reference
set. Per (d, N_generated, N_reference), the ratio of each estimator (mean over 3 draws) to the
truth. Prints a table and writes ``benchmarks/spread_vs_redraws.json``, which the study write-up
quotes (stage `report`). Run: `python benchmarks/spread_vs_redraws.py` (about a minute on 2 CPU cores).
"""

import json
from pathlib import Path

import numpy as np

from ddpm_study import uncertainty as u

OUT = Path(__file__).with_suffix(".json")
CASES = [(16, 150, 400), (256, 100, 250), (512, 200, 500)]  # (d, N generated, N reference)
JACKKNIFE_GROUPS, BOOTSTRAP_REPS, REDRAWS, DRAWS = 50, 200, 80, 3


def features(n, d, seed, shift=0.0):
    mix = np.random.default_rng(d).standard_normal((d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).standard_normal((n, d)) @ mix + shift


def bootstrap_std(g, r, reps, seed):
    """The naive bootstrap the study rejected: resample both sets with replacement."""
    rng = np.random.default_rng(seed)
    vals = [u.frechet_distance(g[rng.integers(0, len(g), len(g))], r[rng.integers(0, len(r), len(r))])
            for _ in range(reps)]
    return np.std(vals, ddof=1)


def main() -> None:
    rows = []
    for d, ng, nr in CASES:
        truth = np.std([u.frechet_distance(features(ng, d, 1000 + s, 0.1), features(nr, d, 2000 + s))
                        for s in range(REDRAWS)], ddof=1)
        boot = np.mean([bootstrap_std(features(ng, d, 99 + k, 0.1), features(nr, d, 11 + k), BOOTSTRAP_REPS, k)
                        for k in range(DRAWS)])
        jack = np.mean([u.jackknife_std(u.jackknife_fid(features(nr, d, 11 + k), {"g": features(ng, d, 99 + k, 0.1)},
                                                        JACKKNIFE_GROUPS, seed=k)["g"]) for k in range(DRAWS)])
        rows.append({"d": d, "n_generated": ng, "n_reference": nr, "redraw_std": float(truth),
                     "bootstrap_ratio": float(boot / truth), "jackknife_ratio": float(jack / truth)})
        print(f"d={d:4d} N={ng}/{nr}: redraw std {truth:.3f}; bootstrap/truth {boot / truth:.2f}; "
              f"jackknife({JACKKNIFE_GROUPS} groups)/truth {jack / truth:.2f}")
    OUT.write_text(json.dumps({"jackknife_groups": JACKKNIFE_GROUPS, "bootstrap_reps": BOOTSTRAP_REPS,
                               "redraws": REDRAWS, "draws": DRAWS, "cases": rows}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
