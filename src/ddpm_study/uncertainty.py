"""How sure an FID is: an exact fast Fréchet distance and paired jackknife spreads.

torch-fidelity's FID (``fid_statistics_to_metric``) takes a 2048x2048 matrix square root (scipy
``sqrtm``, seconds each). A jackknife needs a hundred FIDs per set, so here the same quantity is computed through the
samples instead of the covariances. With centred, scaled features X [n1, d] and Y [n2, d],
Σ1 = XᵀX and Σ2 = YᵀY, the non-zero eigenvalues of Σ1 Σ2 are those of (X Yᵀ)(X Yᵀ)ᵀ, so

    tr (Σ1^½ Σ2 Σ1^½)^½ = Σ_i sqrt(eig_i(Σ1 Σ2)) = ‖X Yᵀ‖_*   (the nuclear norm of an n1 x n2 matrix)

which is exact, needs no matrix square root and costs one product and one small eigensolve
when n1, n2 are in the hundreds (the study's case: below d = 2048). With more samples than
features the same eigenvalues come from the d x d matrix Σ1^½ Σ2 Σ1^½ instead.

The spread is a delete-a-group jackknife over the generated *and* the reference features: the
sampling noise of the FID estimate at this N, i.e. what another sampling seed and another real
split would change. It says nothing about training noise (another training seed). The bootstrap
is *not* used: with fewer samples than feature dimensions (N = 200-500 against d = 2048) the
duplicates it draws shrink the covariances' rank, and on synthetic data it overstates the
spread over true redraws several times; the jackknife, conservative by the Efron-Stein
inequality, overstates it far less (the ratios: ``benchmarks/spread_vs_redraws.json``, written by
``benchmarks/spread_vs_redraws.py`` and quoted by the write-up; tests/test_uncertainty.py pins a band). Schedules sampled from the same
noise drop the *same* groups (a paired jackknife), which gives the spread of their difference.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

# frechet_distance equals torch-fidelity's sqrtm-based FID to this relative tolerance (pinned by
# tests/test_uncertainty.py at the study's shapes; quoted by the write-up).
EXACT_FID_RTOL = 1e-6

# Two schedules are "within noise" when their FID difference is smaller than this many standard
# deviations of that difference (about a 95% two-sided interval for a normal difference).
NOISE_SIGMAS = 2.0


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FID between Gaussians fitted to features ``x`` [n1, d] and ``y`` [n2, d] (unbiased covariances)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"expected two feature sets [n >= 2, d] of equal d, got {x.shape} and {y.shape}")
    mu_x, mu_y = x.mean(0), y.mean(0)
    xc = (x - mu_x) / math.sqrt(len(x) - 1)
    yc = (y - mu_y) / math.sqrt(len(y) - 1)
    if min(len(x), len(y)) <= x.shape[1]:
        cross = xc @ yc.T
        square = cross @ cross.T if len(x) <= len(y) else cross.T @ cross  # the smaller of the two
    else:  # more samples than features: the same eigenvalues from Σ1^½ Σ2 Σ1^½ (d x d)
        lam, vec = np.linalg.eigh(xc.T @ xc)
        root = (vec * np.sqrt(np.clip(lam, 0, None))) @ vec.T
        square = root @ (yc.T @ yc) @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(square), 0, None)).sum()  # tiny negatives are round-off
    return float(((mu_x - mu_y) ** 2).sum() + (xc * xc).sum() + (yc * yc).sum() - 2 * trace_sqrt)


def jackknife_fid(
    reference: np.ndarray, generated: Mapping[str, np.ndarray], groups: int, seed: int | Sequence[int]
) -> dict[str, np.ndarray]:
    """Delete-a-group jackknife replicates [2, groups] of each generated set's FID against ``reference``.

    Row 0 drops one of ``groups`` random groups of generated samples at a time, row 1 one group of
    reference samples. All generated sets must have one size: they drop the same groups (paired).
    """
    sizes = {len(v) for v in generated.values()}
    if len(sizes) != 1:
        raise ValueError(f"paired jackknife needs generated sets of one size, got {sorted(sizes)}")
    (n,) = sizes
    if not 2 <= groups <= min(n, len(reference)):
        raise ValueError(f"groups must be in [2, {min(n, len(reference))}], got {groups}")
    rng = np.random.default_rng(seed)
    drop_generated = np.array_split(rng.permutation(n), groups)
    drop_reference = np.array_split(rng.permutation(len(reference)), groups)
    out = {name: np.empty((2, groups)) for name in generated}
    for g in range(groups):
        reference_kept = np.delete(reference, drop_reference[g], axis=0)
        for name, feats in generated.items():
            out[name][0, g] = frechet_distance(np.delete(feats, drop_generated[g], axis=0), reference)
            out[name][1, g] = frechet_distance(feats, reference_kept)
    return out


def jackknife_std(replicates: np.ndarray) -> float:
    """Standard error from jackknife replicates [sides, groups]: the sides (independent samples) add."""
    groups = replicates.shape[1]
    centred = replicates - replicates.mean(axis=1, keepdims=True)
    return float(np.sqrt((groups - 1) / groups * (centred**2).sum()))


def compare(point_a: float, point_b: float, reps_a: np.ndarray, reps_b: np.ndarray) -> dict[str, float | bool]:
    """Difference a - b of two paired FIDs, its jackknife std, and whether it is within noise."""
    diff = point_a - point_b
    std = jackknife_std(np.asarray(reps_a) - np.asarray(reps_b))
    return {"diff": diff, "std": std, "within_noise": bool(abs(diff) <= NOISE_SIGMAS * std)}
