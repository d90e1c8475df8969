"""Precision and recall: torch-fidelity's values, the known direction of a fidelity-for-diversity trade, and a
jackknife spread that tracks redraws."""

import numpy as np
import pytest
import torch
from torch_fidelity.metric_prc import calculate_precision_recall_full

from ddpm_study import uncertainty
from ddpm_study.precision_recall import jackknife_precision_recall, precision_recall


def gaussian(n, d=64, scale=1.0, shift=0.0, seed=0):
    return (np.random.default_rng(seed).standard_normal((n, d)) * scale + shift).astype(np.float32)


@pytest.mark.parametrize("n_gen,n_ref", [(120, 200), (200, 120)])
def test_equal_to_torch_fidelity(n_gen, n_ref):
    gen, ref = gaussian(n_gen, scale=0.8, seed=1), gaussian(n_ref, seed=2)
    theirs = calculate_precision_recall_full(torch.from_numpy(gen), torch.from_numpy(ref), neighborhood=3)
    assert precision_recall(gen, ref) == pytest.approx(theirs, abs=1e-12)
    points, _ = jackknife_precision_recall(ref, {"a": gen}, groups=10, seed=0)
    assert (points["a"]["precision"], points["a"]["recall"]) == pytest.approx(theirs, abs=1e-12)


def test_a_narrower_generator_has_more_precision_and_less_recall():
    """What guidance does to a model (Ho & Salimans 2021, fig. 1): samples crowd the modes."""
    ref = gaussian(300, seed=3)
    same = precision_recall(gaussian(300, seed=4), ref)
    narrow = precision_recall(gaussian(300, scale=0.6, seed=4), ref)
    wide = precision_recall(gaussian(300, scale=1.6, seed=4), ref)
    assert narrow[0] > same[0] > wide[0]
    assert narrow[1] < same[1] < wide[1]


def test_the_jackknife_spread_is_of_the_size_of_redraws_and_pairs_schedules():
    ref = gaussian(200, seed=5)
    draws = [precision_recall(gaussian(200, scale=0.9, seed=100 + i), gaussian(200, seed=200 + i)) for i in range(30)]
    redraw_std = np.std(np.array(draws), axis=0, ddof=1)
    _, reps = jackknife_precision_recall(ref, {"a": gaussian(200, scale=0.9, seed=6)}, groups=20, seed=0)
    for i, m in enumerate(("precision", "recall")):
        ratio = uncertainty.jackknife_std(reps["a"][m]) / redraw_std[i]
        assert 0.5 < ratio < 3.0, (m, ratio)
    # Two sets of one generator that share their samples but one: their difference has almost no spread.
    a = gaussian(200, scale=0.9, seed=7)
    b = a.copy()
    b[0] += 0.01
    points, reps = jackknife_precision_recall(ref, {"a": a, "b": b}, groups=20, seed=0)
    d = uncertainty.compare(points["a"]["recall"], points["b"]["recall"], reps["a"]["recall"], reps["b"]["recall"])
    assert d["std"] < 0.2 * uncertainty.jackknife_std(reps["a"]["recall"]) and d["within_noise"]


def test_too_few_samples_for_the_neighbourhood_is_an_error():
    with pytest.raises(ValueError, match="groups must be in"):
        jackknife_precision_recall(gaussian(10), {"a": gaussian(10)}, groups=20, seed=0)
    with pytest.raises(ValueError, match="k = 3"):
        jackknife_precision_recall(gaussian(6), {"a": gaussian(6)}, groups=2, seed=0)
