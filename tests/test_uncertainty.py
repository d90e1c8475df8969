"""The fast exact FID, bootstrap spreads, paired comparisons and the trivial generators."""

import numpy as np
import pytest
import torch

from ddpm_study import baselines, metrics, uncertainty


def features(n, d, seed, shift=0.0, scale=1.0):
    """n draws of one correlated d-dim Gaussian (fixed by d; like Inception features), shifted and scaled."""
    mix = np.random.default_rng(d).standard_normal((d, d)) / np.sqrt(d)
    return (np.random.default_rng(seed).standard_normal((n, d)) @ mix * scale + shift).astype(np.float32)


def test_fid_of_identical_features_is_zero():
    x = features(300, 64, 0)
    trace = np.trace(np.cov(x.astype(np.float64), rowvar=False))  # ~64: round-off is relative to it
    assert uncertainty.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6 * trace)


@pytest.mark.parametrize("n1,n2,d", [(50, 80, 256), (80, 50, 256), (400, 300, 32)])
def test_fast_fid_equals_torch_fidelity(n1, n2, d):
    """Fewer samples than dimensions (the rank-deficient case of the study), either order, and more."""
    x, y = features(n1, d, 1), features(n2, d, 2, shift=0.3, scale=1.2)
    expected = metrics.fid(torch.from_numpy(x), torch.from_numpy(y))  # torch-fidelity: scipy sqrtm
    assert uncertainty.frechet_distance(x, y) == pytest.approx(expected, rel=1e-6)
    assert uncertainty.frechet_distance(y, x) == pytest.approx(expected, rel=1e-6)


def test_fid_of_two_gaussians_matches_closed_form():
    """For commuting covariances FID = |m1 - m2|^2 + sum_i (s1_i - s2_i)^2; estimated from samples."""
    rng = np.random.default_rng(3)
    m1, s1 = np.array([0.0, 1.0, -1.0, 2.0]), np.array([1.0, 2.0, 0.5, 1.0])
    m2, s2 = np.array([1.0, 1.0, 0.0, 2.0]), np.array([1.5, 1.0, 0.5, 0.2])
    closed = ((m1 - m2) ** 2).sum() + ((s1 - s2) ** 2).sum()
    x = rng.standard_normal((100_000, 4)) * s1 + m1
    y = rng.standard_normal((100_000, 4)) * s2 + m2
    assert uncertainty.frechet_distance(x, y) == pytest.approx(closed, rel=0.02)


def test_fid_rejects_mismatched_features():
    with pytest.raises(ValueError, match="equal d"):
        uncertainty.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


def test_bootstrap_spread_matches_spread_over_independent_draws():
    """The bootstrap of one set estimates what new seeds would show: compare with 40 real redraws."""
    reference = features(400, 16, 10)
    seeds_fid = [uncertainty.frechet_distance(features(150, 16, 100 + s, shift=0.1), reference) for s in range(40)]
    _, seed_std = uncertainty.mean_std(seeds_fid)
    boot = uncertainty.bootstrap_fid(features(400, 16, 11), {"g": features(150, 16, 99, shift=0.1)}, 300, seed=0)["g"]
    ratio = boot.std(ddof=1) / seed_std
    assert 0.5 < ratio < 2.0, (boot.std(ddof=1), seed_std)


def test_bootstrap_is_reproducible_and_paired():
    reference, g = features(200, 8, 20), features(100, 8, 21, shift=0.2)
    a = uncertainty.bootstrap_fid(reference, {"a": g, "b": g + 0.05}, 50, seed=7)
    again = uncertainty.bootstrap_fid(reference, {"a": g, "b": g + 0.05}, 50, seed=7)
    np.testing.assert_array_equal(a["a"], again["a"])
    # Paired: a constant shift changes every resample alike, so the difference is far tighter than
    # the spread of either FID, and it is not within noise even though the FIDs' spreads overlap.
    point_a, point_b = uncertainty.frechet_distance(g, reference), uncertainty.frechet_distance(g + 0.05, reference)
    cmp = uncertainty.compare(point_a, point_b, a["a"], a["b"])
    assert cmp["std"] < 0.5 * min(a["a"].std(), a["b"].std())
    assert abs(cmp["diff"]) > 2 * cmp["std"] and not cmp["within_noise"]
    same = uncertainty.compare(point_a, point_a, a["a"], a["a"])
    assert same == {"diff": 0.0, "std": 0.0, "within_noise": True}
    with pytest.raises(ValueError, match="one size"):
        uncertainty.bootstrap_fid(reference, {"a": g, "b": g[:50]}, 5, seed=0)


def test_two_draws_of_one_distribution_are_within_noise():
    reference = features(300, 8, 30)
    a, b = features(150, 8, 31), features(150, 8, 32)
    boot = uncertainty.bootstrap_fid(reference, {"a": a, "b": b}, 200, seed=1)
    cmp = uncertainty.compare(uncertainty.frechet_distance(a, reference), uncertainty.frechet_distance(b, reference),
                              boot["a"], boot["b"])
    assert cmp["within_noise"]


def test_mean_std():
    assert uncertainty.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert uncertainty.mean_std([4.0]) == (4.0, 0.0)
    with pytest.raises(ValueError):
        uncertainty.mean_std([])


def test_trivial_generators():
    noise = baselines.gaussian_noise(6, (1, 28, 28), seed=0)
    assert noise.dtype == torch.uint8 and noise.shape == (6, 1, 28, 28)
    assert torch.equal(noise, baselines.gaussian_noise(6, (1, 28, 28), seed=0))
    assert 100 < noise.float().mean() < 155 and (noise == 0).any() and (noise == 255).any()  # N(0, 1) clipped
    train = np.stack([np.full((1, 2, 2), 10, np.uint8), np.full((1, 2, 2), 21, np.uint8)])
    mean = baselines.mean_image(train, 3)
    assert mean.shape == (3, 1, 2, 2) and (mean == 16).all()  # round(15.5) to even
