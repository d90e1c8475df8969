"""Reading a difference beyond one run: training seeds as a second source of spread, and a 2 x 2
factorial split of a difference between two schedules into a training and a sampling part.

- ``seed_verdict``: paired FID differences of two schedules, one per training seed (each from the
  same sampling noise and reference split). The seeds are the replication unit, so the spread is
  the between-seed standard deviation; it contains each estimate's sampling noise as well as the
  training noise. A verdict *survives* when the seed-mean difference's two-sided t interval
  (n - 1 degrees of freedom) excludes zero; with every seed agreeing in sign but the interval
  covering zero it keeps only its *direction*; when seeds disagree in sign it *reverses*.
- ``factorial_split``: FID(A trained, A sampled) - FID(B, B) = training + sampling exactly, each
  the effect of one factor averaged over the two levels of the other (Karras et al. 2022 treat
  the training noise distribution and the sampling discretisation as separate choices). Its
  spreads are jackknife stds of the same linear combination of paired replicates.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from .uncertainty import jackknife_std

CONFIDENCE = 0.95
VERDICTS = ("survives", "direction only", "reverses", "one seed")

# Weights of the four cells (trained with, sampled on) in each part; a and b are filled in.
_PARTS = {
    "total": {("a", "a"): 1.0, ("b", "b"): -1.0},
    "training": {("a", "a"): 0.5, ("a", "b"): 0.5, ("b", "a"): -0.5, ("b", "b"): -0.5},
    "sampling": {("a", "a"): 0.5, ("b", "a"): 0.5, ("a", "b"): -0.5, ("b", "b"): -0.5},
}


def seed_verdict(diffs: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float | str]:
    """Mean and between-seed sd of paired differences (one per training seed), the half width of the
    mean's t interval, and the verdict (one of ``VERDICTS``)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0 or not np.all(np.isfinite(d)):
        raise ValueError(f"expected finite differences, one per seed, got {diffs!r}")
    n, mean = len(d), float(d.mean())
    if n == 1:
        return {"mean": mean, "sd": math.nan, "half_width": math.nan, "verdict": "one seed"}
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))
    signs = set(np.sign(d))
    if len(signs) > 1 or 0.0 in signs:
        verdict = "reverses"
    elif abs(mean) > half:
        verdict = "survives"
    else:
        verdict = "direction only"
    return {"mean": mean, "sd": sd, "half_width": half, "verdict": verdict}


def factorial_split(points: Mapping[tuple[str, str], float], replicates: Mapping[tuple[str, str], np.ndarray],
                    a: str, b: str) -> dict[str, dict[str, float]]:
    """FID(a, a) - FID(b, b) split into a training and a sampling part; keys (trained with, sampled on).

    Positive values favour ``b``. Returns {total, training, sampling}, each as {value, std};
    training + sampling equals total exactly.
    """
    name = {"a": a, "b": b}
    out = {}
    for part, weights in _PARTS.items():
        cells = {(name[x], name[y]): w for (x, y), w in weights.items()}
        value = sum(w * points[c] for c, w in cells.items())
        reps = sum(w * np.asarray(replicates[c], dtype=np.float64) for c, w in cells.items())
        out[part] = {"value": float(value), "std": jackknife_std(reps)}
    return out


def overtakes(minus_ddpm: Mapping[int, Any]) -> int | None:
    """The first snapshot from which on a sampler stays ahead of DDPM beyond noise, or None.

    ``minus_ddpm``: snapshot -> the paired difference FID(sampler) - FID(DDPM), with ``diff`` and
    ``within_noise`` attributes (``pipeline.outputs.Pair``)."""
    steps = sorted(minus_ddpm)
    ahead = [s for s in steps if minus_ddpm[s].diff < 0 and not minus_ddpm[s].within_noise]
    for s in ahead:
        if all(t in ahead for t in steps if t >= s):
            return s
    return None


def plateau(gain: Mapping[int, Any]) -> int | None:
    """The first snapshot after which no later step of training improves FID beyond noise, or None when the last
    step still does.

    ``gain``: snapshot -> the paired difference FID(next snapshot) - FID(this one), for every snapshot but the
    last (``diff`` and ``within_noise`` attributes, as in ``overtakes``)."""
    steps = sorted(gain)
    improving = [s for s in steps if gain[s].diff < 0 and not gain[s].within_noise]
    if not improving:
        return steps[0] if steps else None
    if improving[-1] == steps[-1]:
        return None
    return steps[steps.index(improving[-1]) + 1]


def extrapolated_crossing(steps: Sequence[int], diffs: Sequence[float], stds: Sequence[float]) -> dict[str, float] | None:
    """Where a narrowing gap would reach 0: a weighted least-squares line of the gap in log2(training steps) through
    the given snapshots (weights 1/std^2), solved for gap = 0, with its standard error by the delta method.

    Returns {"step", "low", "high", "slope"} (``low``/``high``: the step at +-1 standard error of the crossing in
    log2 steps; ``slope``: gap change per doubling of training), or None when the line does not fall towards 0
    (slope >= 0 for a gap that starts positive). The crossing may lie inside the fitted snapshots, when the gap
    has changed sign within them. The snapshots share their samples' noise, so their errors are correlated;
    treating them as independent, as here, understates the uncertainty: read the range as a lower bound."""
    x, y, w = np.log2(np.asarray(steps, dtype=float)), np.asarray(diffs, dtype=float), 1 / np.asarray(stds, dtype=float) ** 2
    if len(x) < 2:
        raise ValueError(f"expected at least 2 snapshots, got {len(x)}")
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    a, b = cov @ design.T @ (w * y)
    if b * np.sign(y[0]) >= 0:  # the gap at the first snapshot fitted does not shrink towards 0
        return None
    x0 = -a / b
    grad = np.array([-1 / b, a / b ** 2])  # d x0 / d (a, b)
    se = float(np.sqrt(grad @ cov @ grad))
    return {"step": float(2 ** x0), "low": float(2 ** (x0 - se)), "high": float(2 ** (x0 + se)), "slope": float(b)}
