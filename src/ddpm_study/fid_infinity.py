"""FID without its dependence on N: Chong & Forsyth's FID∞ (2020, "Effectively Unbiased FID and Inception Score
and where to find them").

FID estimated from N samples is biased upwards, and the bias falls with N: at the study's N (hundreds to a few
thousand) it is larger than the differences between schedules (real vs real: 37.8 at N = 500). Chong & Forsyth
observe that FID_N is close to linear in 1/N,

    FID_N ≈ FID∞ + k / N,

so they compute FID at several N (random subsets of the samples), fit a least-squares line in 1/N, and read FID∞ at
1/N = 0. Their reference statistics are fixed (50k real images); here both sides are subsets of equal size n of the
generated set and of the reference split, so the line extrapolates both sides' bias at once.

Their fits use N = 5,000-50,000 with 2048-d features, more samples than dimensions. Below d the bias is not linear
in 1/N (it bends: the slope grows with N), and a line through small N leaves a positive intercept for two sets from
one distribution; ``benchmarks/fid_infinity.py`` measures how large on this data set's real features, and the tests
pin both regimes on Gaussians with a known Fréchet distance. ``degree = 2`` adds a 1/N² term, the next term of the
bias's expansion, which absorbs part of the bend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from .uncertainty import Side, distance, jackknife_groups


@dataclass(frozen=True)
class Extrapolated:
    """FID∞ (the fit's value at 1/N = 0), the fit's coefficients (highest power of 1/N first, as ``np.polyfit``),
    and the FIDs it was fitted to: ``fids[i, j]`` at ``sizes[i]``, subset draw j."""

    value: float
    coefficients: tuple[float, ...]
    sizes: tuple[int, ...]
    fids: np.ndarray

    def at(self, n: float) -> float:
        """The fitted FID at N = n (``inf``: FID∞)."""
        return float(np.polyval(self.coefficients, 0.0 if np.isinf(n) else 1.0 / n))


def subset_sizes(n: int, count: int = 5, smallest: float = 0.25) -> list[int]:
    """``count`` sizes from ``smallest`` x n to n, evenly spaced in 1/N (the fit's axis), as Chong & Forsyth space
    theirs (15 sizes from 5k to 50k)."""
    if not 0 < smallest <= 1 or count < 2:
        raise ValueError(f"expected 0 < smallest <= 1 and count >= 2, got {smallest}, {count}")
    inverse = np.linspace(1 / n, 1 / (smallest * n), count)
    sizes = sorted({int(round(1 / v)) for v in inverse})
    if len(sizes) < 2 or sizes[0] < 2:
        raise ValueError(f"N = {n} is too small for {count} subset sizes down to {smallest:g} N")
    return sizes


def fid_at_sizes(generated: Mapping[str, np.ndarray], reference: np.ndarray, sizes: Sequence[int], draws: int,
                 seed: int | Sequence[int], device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """FID [len(sizes), draws] of each generated set against the reference, both sides random subsets of size n
    (without replacement; the full sets at n = their size). Every generated set draws the *same* indices (sets
    sampled from shared noise stay paired), and each (size, draw) one reference subset shared by all sets."""
    lengths = {len(v) for v in generated.values()}
    if len(lengths) != 1:
        raise ValueError(f"paired subsets need generated sets of one size, got {sorted(lengths)}")
    (n_gen,) = lengths
    if max(sizes) > min(n_gen, len(reference)):
        raise ValueError(f"subset size {max(sizes)} exceeds the sets ({n_gen} generated, {len(reference)} reference)")
    rng = np.random.default_rng(seed)
    out = {name: np.empty((len(sizes), draws)) for name in generated}
    for i, n in enumerate(sizes):
        for j in range(draws):
            gi, ri = rng.permutation(n_gen)[:n], rng.permutation(len(reference))[:n]
            ref = Side(reference[ri], device)
            for name, feats in generated.items():
                out[name][i, j] = distance(Side(feats[gi], device), ref)
    return out


def extrapolate(sizes: Sequence[int], fids: np.ndarray, degree: int = 1) -> Extrapolated:
    """The least-squares polynomial of ``degree`` in 1/N through every (size, draw) FID, and its value at 1/N = 0."""
    fids = np.asarray(fids, dtype=float)
    if fids.ndim != 2 or fids.shape[0] != len(sizes):
        raise ValueError(f"expected fids [len(sizes) = {len(sizes)}, draws], got {fids.shape}")
    if len(set(sizes)) <= degree:
        raise ValueError(f"a degree-{degree} fit needs more than {degree} distinct sizes, got {sorted(set(sizes))}")
    x = np.repeat(1.0 / np.asarray(sizes, dtype=float), fids.shape[1])
    coefficients = np.polyfit(x, fids.reshape(-1), degree)
    return Extrapolated(float(coefficients[-1]), tuple(map(float, coefficients)), tuple(sizes), fids)


def fid_infinity(generated: Mapping[str, np.ndarray], reference: np.ndarray, sizes: Sequence[int], draws: int,
                 seed: int | Sequence[int], degree: int = 1, device: torch.device | str = "cpu") -> dict[str, Extrapolated]:
    """FID∞ of each generated set (``fid_at_sizes``, then ``extrapolate``)."""
    at = fid_at_sizes(generated, reference, sizes, draws, seed, device)
    return {name: extrapolate(sizes, f, degree) for name, f in at.items()}


def _head(perm: np.ndarray, fraction: float) -> np.ndarray:
    """The first ``fraction`` of a permutation (at least 2 points: a covariance)."""
    return perm[: max(2, int(round(fraction * len(perm))))]


def _axis(n_generated: int, n_reference: int) -> float:
    """The fit's 1/N for subsets of unequal sizes: the bias is a 1/n term of each side (to first order), so the
    mean of the two inverses (1/N itself when they are equal, as everywhere but a jackknife replicate)."""
    return 0.5 * (1.0 / n_generated + 1.0 / n_reference)


def jackknife(
    reference: np.ndarray, generated: Mapping[str, np.ndarray], groups: int, seed: int | Sequence[int],
    fractions: Sequence[float], degree: int = 2, device: torch.device | str = "cpu",
    full: tuple[Mapping[str, float], Mapping[str, np.ndarray]] | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """FID∞ of each generated set and its delete-a-group jackknife replicates [2, groups], the FID jackknife's
    groups (``uncertainty.jackknife_groups`` with the same ``seed``) left out in turn.

    The subset at fraction f is the first f of one fixed permutation of each side (every generated set the same
    one: paired), restricted to the kept points in a replicate: for exchangeable samples that is a random subset,
    so FID∞ is one statistic of the data and its jackknife variance includes the subset draw. Redrawing the subsets
    in each replicate instead would add that draw's noise to every replicate, which the jackknife multiplies by
    ``groups - 1``. ``full``: the FID jackknife's (points, replicates) of the same sets and groups, reused at f = 1.
    """
    fractions = sorted(float(f) for f in fractions)
    if not all(0 < f <= 1 for f in fractions) or len(set(fractions)) <= degree:
        raise ValueError(f"expected more than {degree} distinct fractions in (0, 1], got {fractions}")
    drop_generated, drop_reference = jackknife_groups(generated, len(reference), groups, seed)
    n = sum(len(d) for d in drop_generated)
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 0xF1D])  # the subsets' own stream
    gen_perm, ref_perm = rng.permutation(n), rng.permutation(len(reference))

    def ref_sides(perm: np.ndarray) -> list[Side]:
        return [Side(reference[_head(perm, f)], device) for f in fractions]

    def fit(fids: list[float], gen_perm: np.ndarray, ref_perm: np.ndarray) -> float:
        x = [_axis(len(_head(gen_perm, f)), len(_head(ref_perm, f))) for f in fractions]
        return float(np.polyfit(x, fids, degree)[-1])

    def fids(feats: np.ndarray, gperm: np.ndarray, refs: list[Side], at_full: float | None) -> list[float]:
        return [at_full if (f == 1.0 and at_full is not None) else distance(Side(feats[_head(gperm, f)], device), r)
                for f, r in zip(fractions, refs)]

    refs_full = ref_sides(ref_perm)
    points = {name: fit(fids(feats, gen_perm, refs_full, None if full is None else full[0][name]), gen_perm, ref_perm)
              for name, feats in generated.items()}
    gen_sides = {name: [Side(feats[_head(gen_perm, f)], device) for f in fractions] for name, feats in generated.items()}
    out = {name: np.empty((2, groups)) for name in generated}
    for g in range(groups):
        kept_gen = gen_perm[~np.isin(gen_perm, drop_generated[g])]
        kept_ref = ref_perm[~np.isin(ref_perm, drop_reference[g])]
        refs_kept = ref_sides(kept_ref)
        for name, feats in generated.items():
            reps = None if full is None else full[1][name]
            out[name][0, g] = fit(fids(feats, kept_gen, refs_full, None if reps is None else reps[0, g]),
                                  kept_gen, ref_perm)
            at_full = None if reps is None else reps[1, g]
            out[name][1, g] = fit([at_full if (f == 1.0 and at_full is not None) else distance(s, r)
                                   for f, s, r in zip(fractions, gen_sides[name], refs_kept)], gen_perm, kept_ref)
    return points, out
