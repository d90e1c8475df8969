"""How well do bootstrap and jackknife spreads of FID match the spread over true redraws?

Synthetic correlated Gaussian features (as in tests/test_uncertainty.py), generated set shifted by
0.1; "truth" is the std of FID over 80 independent redraws of both the generated and the reference
set. Prints, per (d, N_generated, N_reference), the ratio of each estimator (mean over 3 draws) to
the truth. Run: `python benchmarks/spread_vs_redraws.py` (about a minute on 2 CPU cores).
"""

import numpy as np

from ddpm_study import uncertainty as u


def features(n, d, seed, shift=0.0):
    mix = np.random.default_rng(d).standard_normal((d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).standard_normal((n, d)) @ mix + shift


def bootstrap_std(g, r, reps, seed):
    """The naive bootstrap the study rejected: resample both sets with replacement."""
    rng = np.random.default_rng(seed)
    vals = [u.frechet_distance(g[rng.integers(0, len(g), len(g))], r[rng.integers(0, len(r), len(r))])
            for _ in range(reps)]
    return np.std(vals, ddof=1)


for d, ng, nr in [(16, 150, 400), (256, 100, 250), (512, 200, 500)]:
    truth = np.std([u.frechet_distance(features(ng, d, 1000 + s, 0.1), features(nr, d, 2000 + s)) for s in range(80)],
                   ddof=1)
    boot = np.mean([bootstrap_std(features(ng, d, 99 + k, 0.1), features(nr, d, 11 + k), 200, k) for k in range(3)])
    jack = np.mean([u.jackknife_std(u.jackknife_fid(features(nr, d, 11 + k), {"g": features(ng, d, 99 + k, 0.1)},
                                                    50, seed=k)["g"]) for k in range(3)])
    print(f"d={d:4d} N={ng}/{nr}: redraw std {truth:.3f}; bootstrap/truth {boot / truth:.2f}; "
          f"jackknife(50 groups)/truth {jack / truth:.2f}")
