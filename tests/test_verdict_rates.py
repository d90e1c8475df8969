"""benchmarks/verdict_rates.py's own arithmetic: the noise level of its null at the schedules' distance
(``--shift noise``) against the closed-form Fréchet distance of two Gaussians, and its rates on trials of known
verdicts. The rates themselves are measured by running it; tests/test_docs.py checks the quotes."""

import numpy as np
import pytest

from benchmarks import verdict_rates
from ddpm_study import uncertainty


def test_noise_level_recovers_the_closed_form_level():
    # x ~ N(0, I_d) and x + s·eps ~ N(0, (1 + s²) I_d): FD = d (sqrt(1 + s²) - 1)², so FD = f at
    # s = sqrt((1 + sqrt(f / d))² - 1). With n ≫ d the small-N bias is a few hundredths.
    d, n, target = 8, 20000, 2.0
    rng = np.random.default_rng(0)
    ref, a, eps = (rng.standard_normal((n, d)) for _ in range(3))
    level = verdict_rates.noise_level(a, ref, np.ones(d), eps, target, tol=1e-4)
    assert level == pytest.approx(np.sqrt((1 + np.sqrt(target / d)) ** 2 - 1), rel=0.02)
    got = uncertainty.frechet_distance(verdict_rates.noisy(a, np.ones(d), level, eps), ref)
    assert got == pytest.approx(target, rel=1e-3)


def test_the_shifted_sets_are_in_known_order():
    """FID grows with the noise's variance: the shifts the benchmark calls "of known order" are."""
    d, n = 16, 4000
    rng = np.random.default_rng(1)
    ref, b, eps = (rng.standard_normal((n, d)) * np.linspace(0.5, 2, d) for _ in range(3))
    scale = ref.std(0)
    fids = [uncertainty.frechet_distance(verdict_rates.noisy(b, scale, 0.5 * np.sqrt(1 + p), eps), ref)
            for p in (0.0, *verdict_rates.NOISE_SHIFTS)]
    assert np.all(np.diff(fids) > 0)


def test_noise_level_refuses_a_target_below_the_real_sets():
    rng = np.random.default_rng(2)
    ref, a = rng.standard_normal((50, 4)), rng.standard_normal((50, 4)) + 3
    with pytest.raises(SystemExit, match="already score"):
        verdict_rates.noise_level(a, ref, np.ones(4), np.zeros((50, 4)), 1.0)


def test_summary_counts_verdicts_of_known_trials():
    def pair(diff, std):
        return {"diff": diff, "std": std, "within_noise": abs(diff) <= uncertainty.NOISE_SIGMAS * std}

    # 20 equal-distribution trials with |diff| / std = 0.1, 0.2, ..., 2.0 (none beyond 2 stds, so no false
    # "better"); the shift: 5 found at 2 stds, 1 in the wrong direction, the rest tied.
    rows = [{"b": pair(0.1 * (i + 1), 1.0),
             "b0.1": pair(-3.0 if i < 5 else (3.0 if i == 5 else -0.5), 1.0), "fid_a": 10.0} for i in range(20)]
    s = verdict_rates.summary(rows)
    assert s["equal"]["false_better_rate"] == 0.0
    assert s["equal"]["threshold_for_5pct"] == pytest.approx(np.quantile(0.1 * np.arange(1, 21), 0.95))
    assert s["equal"]["mean_jackknife_std"] == 1.0
    shift = s["shifts"]["0.1"]
    assert shift["power"] == 5 / 20 and shift["wrong_direction_rate"] == 1 / 20
    assert shift["mean_diff"] == pytest.approx((5 * -3.0 + 3.0 + 14 * -0.5) / 20)
    # at the calibrated threshold (1.905 stds) the same five are found and the -0.5s are not
    assert shift["power_at_threshold_for_5pct"] == 5 / 20


def test_results_paths():
    assert verdict_rates.results_path(2000).name == "verdict_rates_n2000.json"  # the report stage's dep
    assert verdict_rates.results_path(2000, "noise").name == "verdict_rates_n2000_noise.json"
    assert verdict_rates.results_path(2000, "model", "linear").name == "verdict_rates_n2000_model_linear.json"


def test_replaced_swaps_the_first_rows_for_distinct_pool_rows():
    """The shifted copies of B (--shift generated and model): the first round(p N) rows come from the pool, each pool
    row at most once, the rest are B's, and B itself is untouched."""
    n, d = 50, 3
    b = np.zeros((n, d))
    pool = np.arange(1, 41, dtype=float)[:, None] * np.ones(d)  # rows 1..40, told apart by value
    out = verdict_rates.replaced(b, pool, np.random.default_rng(0))
    assert list(out) == [f"b{p:g}" for p in verdict_rates.FRACTIONS]
    for p, shifted in zip(verdict_rates.FRACTIONS, out.values()):
        k = int(round(p * n))
        assert (shifted[k:] == 0).all() and (shifted[:k] > 0).all()
        assert len(set(shifted[:k, 0])) == k  # without replacement
    assert (b == 0).all()


def test_an_unknown_schedule_is_refused_before_any_work():
    with pytest.raises(SystemExit, match="--schedule must be one of linear, quadratic, sigmoid, cosine, got 'cosin'"):
        verdict_rates.main(trials=1, n=0, real=4000, shift="model", schedule="cosin")


def test_earlier_trials_resume_only_their_own_setup(tmp_path):
    path = tmp_path / "rates.json"
    setup = {"n": 2000, "model": "cosine, fp32, here"}
    assert verdict_rates.earlier_trials(path, setup) == {}  # nothing yet
    path.write_text('{"n": 2000, "model": "cosine, fp32, here", "trials": 3, "trials_detail": [], "seconds": 1.0}')
    assert verdict_rates.earlier_trials(path, setup)["trials"] == 3
    other = {**setup, "model": "cosine, bf16, models/cosine"}
    with pytest.raises(SystemExit, match="3 trials of another setup .*model: 'cosine, fp32, here' there, "
                                         "'cosine, bf16, models/cosine' here.*--restart"):
        verdict_rates.earlier_trials(path, other)
    assert verdict_rates.earlier_trials(path, other, restart=True) == {}
    assert "trials" in path.read_text()  # refusing left the file as it was
