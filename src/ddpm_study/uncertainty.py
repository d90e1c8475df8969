"""How sure an FID is: an exact fast Fréchet distance and paired jackknife spreads.

torch-fidelity's FID (``fid_statistics_to_metric``) takes a 2048x2048 matrix square root (scipy
``sqrtm``, seconds each). A jackknife needs a hundred FIDs per set, so here the same quantity is computed through the
samples instead of the covariances. With centred, scaled features X [n1, d] and Y [n2, d],
Σ1 = XᵀX and Σ2 = YᵀY, the non-zero eigenvalues of Σ1 Σ2 are those of (X Yᵀ)(X Yᵀ)ᵀ, so

    tr (Σ1^½ Σ2 Σ1^½)^½ = Σ_i sqrt(eig_i(Σ1 Σ2)) = ‖X Yᵀ‖_*   (the nuclear norm of an n1 x n2 matrix)

which is exact, needs no matrix square root and costs one product and one small eigensolve
when n1, n2 are in the hundreds (the study's case: below d = 2048). With more samples than
features the same eigenvalues come from the d x d matrix Σ1^½ Σ2 Σ1^½ instead.

Each feature set's part (mean, centred features, trace, and Σ^½ when it is needed) is a ``Side``,
computed once: a jackknife replicate changes one side only, so the other side's Σ^½ (a 2048² eigen-
decomposition) is never recomputed, and each replicate with N > 2048 costs one symmetric
eigenvalue solve. The linear algebra runs in torch float64 on the evaluation device.

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
import torch

# frechet_distance equals torch-fidelity's sqrtm-based FID to this relative tolerance (pinned by
# tests/test_uncertainty.py at the study's shapes; quoted by the write-up).
EXACT_FID_RTOL = 1e-6

# Two schedules are "within noise" when their FID difference is smaller than this many standard
# deviations of that difference (about a 95% two-sided interval for a normal difference).
NOISE_SIGMAS = 2.0


class Side:
    """One feature set [n, d]'s part of a Fréchet distance, in float64 on ``device``: its mean, its centred
    features scaled by 1 / sqrt(n - 1) (so Σ = cᵀc is the unbiased covariance), tr Σ, and Σ^½ on first use."""

    def __init__(self, features: np.ndarray | torch.Tensor, device: torch.device | str = "cpu"):
        x = torch.as_tensor(features).to(device=device, dtype=torch.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"expected a feature set [n >= 2, d], got {tuple(x.shape)}")
        self.n, self.d = x.shape
        self.mu = x.mean(0)
        self.c = (x - self.mu) / math.sqrt(self.n - 1)
        self.trace = (self.c * self.c).sum()
        self._root: torch.Tensor | None = None

    @property
    def cov(self) -> torch.Tensor:
        return self.c.T @ self.c

    @property
    def root(self) -> torch.Tensor:
        """Σ^½ (d x d), computed once."""
        if self._root is None:
            lam, vec = torch.linalg.eigh(self.cov)
            self._root = (vec * lam.clamp(min=0).sqrt()) @ vec.T
        return self._root


def distance(a: Side, b: Side) -> float:
    """The Fréchet distance of the Gaussians fitted to two sides (the module docstring's exact forms)."""
    if a.d != b.d:
        raise ValueError(f"expected two feature sets of equal d, got {a.d} and {b.d}")
    if min(a.n, b.n) <= a.d:
        cross = a.c @ b.c.T
        square = cross @ cross.T if a.n <= b.n else cross.T @ cross  # the smaller of the two
    else:  # more samples than features: Σa^½ Σb Σa^½ (d x d), with the root of the side that already has one
        fixed, other = (b, a) if b._root is not None and a._root is None else (a, b)
        square = fixed.root @ other.cov @ fixed.root
    trace_sqrt = torch.linalg.eigvalsh(square).clamp(min=0).sqrt().sum()  # tiny negatives are round-off
    return float(((a.mu - b.mu) ** 2).sum() + a.trace + b.trace - 2 * trace_sqrt)


def frechet_distance(x: np.ndarray, y: np.ndarray, device: torch.device | str = "cpu") -> float:
    """FID between Gaussians fitted to features ``x`` [n1, d] and ``y`` [n2, d] (unbiased covariances)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"expected two feature sets [n >= 2, d] of equal d, got {x.shape} and {y.shape}")
    return distance(Side(x, device), Side(y, device))


def jackknife_groups(generated: Mapping, n_reference: int, groups: int,
                     seed: int | Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The groups a paired jackknife leaves out in turn: of the generated samples (every set: one size) and of the
    reference, drawn from ``seed`` in that order (so FID and precision/recall drop the same ones)."""
    sizes = {len(v) for v in generated.values()}
    if len(sizes) != 1:
        raise ValueError(f"paired jackknife needs generated sets of one size, got {sorted(sizes)}")
    (n,) = sizes
    if not 2 <= groups <= min(n, n_reference):
        raise ValueError(f"groups must be in [2, {min(n, n_reference)}], got {groups}")
    rng = np.random.default_rng(seed)
    return np.array_split(rng.permutation(n), groups), np.array_split(rng.permutation(n_reference), groups)


def jackknife(
    reference: np.ndarray, generated: Mapping[str, np.ndarray], groups: int, seed: int | Sequence[int],
    device: torch.device | str = "cpu",
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Each generated set's FID against ``reference`` and its delete-a-group jackknife replicates [2, groups].

    Row 0 drops one of ``groups`` random groups of generated samples at a time (the reference side is
    fixed: computed once), row 1 one group of reference samples (the generated side is fixed). All
    generated sets must have one size: they drop the same groups (paired).
    """
    drop_generated, drop_reference = jackknife_groups(generated, len(reference), groups, seed)
    ref = Side(reference, device)
    full = {name: Side(feats, device) for name, feats in generated.items()}
    points = {name: distance(side, ref) for name, side in full.items()}
    out = {name: np.empty((2, groups)) for name in generated}
    for g in range(groups):
        reference_kept = Side(np.delete(reference, drop_reference[g], axis=0), device)
        for name, feats in generated.items():
            out[name][0, g] = distance(Side(np.delete(feats, drop_generated[g], axis=0), device), ref)
            out[name][1, g] = distance(full[name], reference_kept)
    return points, out


def jackknife_fid(
    reference: np.ndarray, generated: Mapping[str, np.ndarray], groups: int, seed: int | Sequence[int],
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """The jackknife replicates of ``jackknife``."""
    return jackknife(reference, generated, groups, seed, device)[1]


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
