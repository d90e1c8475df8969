"""The extended study's verdict rules on synthetic metrics: training seeds as a second spread, the
2 x 2 split of a schedule's advantage, DDIM overtaking DDPM along training."""

import math

import numpy as np
import pytest

from ddpm_study.replication import factorial_split, seed_verdict
from ddpm_study.uncertainty import jackknife_std
from ddpm_study.replication import overtakes, plateau
from pipeline.outputs import Pair


def test_a_difference_every_seed_repeats_survives():
    v = seed_verdict([3.4, 3.0, 3.8])
    assert v["verdict"] == "survives"
    assert v["mean"] == pytest.approx(3.4) and v["sd"] == pytest.approx(0.4)
    # t(0.975, 2) = 4.303: the interval of a mean of 3 seeds is wide.
    assert v["half_width"] == pytest.approx(4.302653 * 0.4 / math.sqrt(3), rel=1e-6)


def test_same_sign_but_a_wide_spread_keeps_only_the_direction():
    v = seed_verdict([3.4, 0.2, 6.0])
    assert v["verdict"] == "direction only" and abs(v["mean"]) < v["half_width"]


def test_a_seed_of_the_other_sign_reverses_the_verdict():
    assert seed_verdict([3.4, -0.5, 2.0])["verdict"] == "reverses"
    assert seed_verdict([-3.4, -0.5, 0.0])["verdict"] == "reverses"  # a tie is not agreement


def test_one_seed_has_no_between_seed_spread():
    v = seed_verdict([3.4])
    assert v["verdict"] == "one seed" and math.isnan(v["half_width"])


def test_bad_differences_are_refused():
    with pytest.raises(ValueError):
        seed_verdict([])
    with pytest.raises(ValueError):
        seed_verdict([1.0, float("nan")])


def _cells(f_aa, f_ab, f_ba, f_bb, rng):
    points = {("a", "a"): f_aa, ("a", "b"): f_ab, ("b", "a"): f_ba, ("b", "b"): f_bb}
    reps = {k: v + rng.normal(0, 1, (2, 10)) for k, v in points.items()}
    return points, reps


def test_split_of_a_pure_sampling_effect():
    """B's model is no better than A's, but B's grid is: all of the advantage is sampling."""
    points, reps = _cells(100.0, 90.0, 100.0, 90.0, np.random.default_rng(0))
    s = factorial_split(points, reps, "a", "b")
    assert s["total"]["value"] == pytest.approx(10.0)
    assert s["sampling"]["value"] == pytest.approx(10.0) and s["training"]["value"] == pytest.approx(0.0)


def test_split_of_a_pure_training_effect_and_the_parts_add_up():
    points, reps = _cells(100.0, 100.0, 94.0, 94.0, np.random.default_rng(1))
    s = factorial_split(points, reps, "a", "b")
    assert s["training"]["value"] == pytest.approx(6.0) and s["sampling"]["value"] == pytest.approx(0.0)
    points, reps = _cells(107.2, 96.7, 105.7, 94.0, np.random.default_rng(2))  # the committed 10-step grid
    s = factorial_split(points, reps, "a", "b")
    assert s["training"]["value"] + s["sampling"]["value"] == pytest.approx(s["total"]["value"])
    assert s["total"]["value"] == pytest.approx(13.2)


def test_split_spreads_are_jackknife_stds_of_the_paired_combination():
    rng = np.random.default_rng(3)
    points, reps = _cells(100.0, 90.0, 95.0, 85.0, rng)
    s = factorial_split(points, reps, "a", "b")
    combo = 0.5 * (reps[("a", "a")] + reps[("b", "a")] - reps[("a", "b")] - reps[("b", "b")])
    assert s["sampling"]["std"] == pytest.approx(jackknife_std(combo))
    # Shared noise cancels: identical replicate noise in all four cells gives zero spread.
    shared = rng.normal(0, 1, (2, 10))
    s = factorial_split(points, {k: v + shared for k, v in points.items()}, "a", "b")
    assert s["total"]["std"] == pytest.approx(0.0, abs=1e-9) and s["training"]["std"] == pytest.approx(0.0, abs=1e-9)


def _gap(diff, within):
    return Pair(diff, 1.0, within)


def test_ddim_overtakes_from_the_first_snapshot_it_stays_ahead():
    gaps = {300: _gap(20, False), 600: _gap(-5, False), 1200: _gap(1, True), 2400: _gap(-6, False), 3600: _gap(-9, False)}
    assert overtakes(gaps) == 2400  # ahead at 600, but not at 1200: not yet for good
    assert overtakes({300: _gap(20, False), 1200: _gap(-1, True)}) is None
    assert overtakes({300: _gap(-3, False), 1200: _gap(-4, False)}) == 300


def test_training_stops_improving_after_the_last_step_that_helps_beyond_noise():
    # gain at snapshot s: FID(next) - FID(s); negative beyond noise = the next snapshot is better
    gains = {500: _gap(-30, False), 1000: _gap(-8, False), 2000: _gap(-1, True), 4000: _gap(-5, False), 8000: _gap(0.5, True)}
    assert plateau(gains) == 8000  # 4000 -> 8000 still helped, 8000 -> the last did not
    assert plateau({500: _gap(-30, False), 1000: _gap(-2, True), 2000: _gap(1, True)}) == 1000
    assert plateau({500: _gap(-30, False), 1000: _gap(-9, False)}) is None  # still improving at the end
    assert plateau({500: _gap(3, True)}) == 500 and plateau({}) is None


def test_the_extrapolated_crossing_solves_the_weighted_line_in_log_steps():
    from ddpm_study.replication import extrapolated_crossing

    steps, stds = [2000, 4000, 8000, 16000], [1.0, 2.0, 2.0, 4.0]
    gap = [30 - 7.5 * k for k in range(4)]  # exactly 30 - 7.5 log2(step / 2000): zero at 2000 * 2^4 = 32000
    out = extrapolated_crossing(steps, gap, stds)
    assert out["step"] == pytest.approx(32000, rel=1e-9) and out["slope"] == pytest.approx(-7.5)
    # the range: +-1 standard error of log2(crossing), by the delta method on numpy's weighted fit and its covariance
    (b, a), cov = np.polyfit(np.log2(steps), gap, 1, w=1 / np.asarray(stds), cov="unscaled")
    x0 = -a / b
    grad = np.array([a / b ** 2, -1 / b])  # d x0 / d (b, a), polyfit's order
    se = math.sqrt(grad @ cov @ grad)
    assert math.log2(out["high"]) == pytest.approx(x0 + se, rel=1e-9) and math.log2(out["low"]) == pytest.approx(x0 - se, rel=1e-9)
    assert extrapolated_crossing(steps, [10, 12, 15, 20], [1, 1, 1, 1]) is None  # widening: no crossing
    inside = extrapolated_crossing(steps, [20, 10, 0, -10], [1, 1, 1, 1])  # crossed within the run
    assert inside["step"] == pytest.approx(8000, rel=1e-9)
    assert extrapolated_crossing(steps, [-10, -12, -15, -20], [1, 1, 1, 1]) is None  # already ahead and moving away
