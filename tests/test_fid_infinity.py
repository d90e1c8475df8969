"""ddpm_study.fid_infinity: Chong & Forsyth's FID∞ against Gaussians whose Fréchet distance is known in closed form."""

import numpy as np
import pytest

from ddpm_study import uncertainty
from ddpm_study.fid_infinity import extrapolate, fid_at_sizes, fid_infinity, subset_sizes
from ddpm_study.fid_infinity import jackknife as fid_infinity_jackknife


def gaussians(n: int, d: int, seed: int):
    """Two Gaussian sets with diagonal covariances and a mean shift, and their exact Fréchet distance
    ‖μ1 − μ2‖² + Σ (√a − √b)² (diagonal covariances commute)."""
    rng = np.random.default_rng(seed)
    a, b = np.linspace(0.5, 2.0, d), np.linspace(1.5, 0.7, d)
    shift = np.full(d, 0.1)
    x = rng.standard_normal((n, d)) * np.sqrt(a)
    y = rng.standard_normal((n, d)) * np.sqrt(b) + shift
    return x, y, float((shift**2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())


def test_subset_sizes_are_even_in_one_over_n():
    sizes = subset_sizes(2000, count=5, smallest=0.25)
    assert sizes[0] == 500 and sizes[-1] == 2000 and len(sizes) == 5
    assert np.allclose(np.diff(1 / np.array(sizes, dtype=float)), np.diff(1 / np.array(sizes, dtype=float))[0], rtol=0.02)
    with pytest.raises(ValueError, match="too small"):
        subset_sizes(4, count=5, smallest=0.25)


def test_an_exact_line_extrapolates_to_its_intercept():
    sizes = [100, 200, 400]
    fids = np.array([[7.0 + 300 / n, 7.0 + 300 / n] for n in sizes])
    fit = extrapolate(sizes, fids)
    assert fit.value == pytest.approx(7.0) and fit.coefficients[0] == pytest.approx(300.0)
    assert fit.at(200) == pytest.approx(8.5) and fit.at(float("inf")) == pytest.approx(7.0)
    quad = extrapolate(sizes, np.array([[1.0 + 50 / n + 4000 / n**2] for n in sizes]), degree=2)
    assert quad.value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="more than 2 distinct sizes"):
        extrapolate([100, 200], fids[:2], degree=2)


def test_fid_infinity_recovers_the_known_distance_as_n_grows():
    """More samples than dimensions (Chong & Forsyth's regime), over 16 independent draws of the two sets: FID at N
    is biased upwards (about 1.0 at N = 200, 0.26 at 800 here), FID∞ is not (its mean error under a quarter of that
    bias), and its error shrinks as N grows."""
    d, repeats = 16, 16
    bias, error, rms = {}, {}, {}
    for n in (200, 800):
        b, e = [], []
        for r in range(repeats):
            x, y, exact = gaussians(n, d, seed=1000 * r + n)
            b.append(uncertainty.frechet_distance(x, y) - exact)
            e.append(fid_infinity({"x": x}, y, subset_sizes(n), draws=4, seed=r)["x"].value - exact)
        bias[n], error[n], rms[n] = np.mean(b), np.mean(e), np.sqrt(np.mean(np.square(e)))
        assert bias[n] > 3 * np.std(b) / np.sqrt(repeats)  # the bias is real, not noise
        assert abs(error[n]) < bias[n] / 4
    assert rms[800] < rms[200] / 1.5


def test_below_d_a_line_leaves_a_positive_intercept_for_one_distribution():
    """Fewer samples than dimensions (the study's N against d = 2048): FID_N is not linear in 1/N, and the line
    through N/4..N reads two sets of one distribution as far from 0; the quadratic term absorbs part of the bend.
    benchmarks/fid_infinity.py measures the same on real Inception features."""
    d, n = 256, 256
    rng = np.random.default_rng(1)
    scale = 1 / np.sqrt(np.arange(1, d + 1))  # a decaying spectrum, as Inception features have
    x, y = (rng.standard_normal((n, d)) * scale for _ in range(2))
    sizes = subset_sizes(n)
    fids = fid_at_sizes({"x": x}, y, sizes, draws=4, seed=0)["x"]
    line, quad = extrapolate(sizes, fids), extrapolate(sizes, fids, degree=2)
    at_n = fids[-1].mean()
    assert line.value > 0.2 * at_n  # far from the true 0
    assert abs(quad.value) < line.value


def test_subsets_are_paired_across_generated_sets():
    """Every generated set draws the same indices: two identical sets get identical FIDs at every (size, draw)."""
    x, y, _ = gaussians(300, 8, seed=3)
    at = fid_at_sizes({"a": x, "b": x.copy()}, y, [100, 300], draws=3, seed=5)
    assert np.array_equal(at["a"], at["b"]) and at["a"][1].std() < 1e-9  # the full sets at n = 300
    assert at["a"][0].std() > 0  # different subsets per draw
    with pytest.raises(ValueError, match="one size"):
        fid_at_sizes({"a": x, "b": x[:200]}, y, [100], draws=1, seed=0)


def test_the_method_page_quotes_the_committed_benchmark():
    """docs/method.md's FID∞ numbers are benchmarks/fid_infinity.json's (rerun: python benchmarks/fid_infinity.py)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    windows = {w["n"]: w for w in json.loads((root / "benchmarks" / "fid_infinity.json").read_text())["windows"]}
    text = " ".join((root / "docs" / "method.md").read_text().split())
    a, b = windows[2000], windows[4000]
    quoted = (f"FID_N {a['fid_at_n']:.1f} and a line over [500, 2000] {a['fid_infinity_degree1']:.1f} at N = 2,000, "
              f"{b['fid_infinity_degree1']:.1f} at N = 4,000; with a 1/N² term {a['fid_infinity_degree2']:.1f} and "
              f"{b['fid_infinity_degree2']:.1f}")
    assert quoted.replace("-", "−") in text


def test_the_jackknife_reuses_the_fid_jackknife_at_full_size_and_pairs_the_sets():
    x, y, _ = gaussians(120, 8, seed=3)
    z = x + 0.05
    ref = gaussians(120, 8, seed=4)[1]
    sets = {"x": x, "z": z}
    full = uncertainty.jackknife(ref, sets, 10, (0, 7))
    fractions = (0.25, 0.5, 0.75, 1.0)
    reused = fid_infinity_jackknife(ref, sets, 10, (0, 7), fractions, full=full)
    computed = fid_infinity_jackknife(ref, sets, 10, (0, 7), fractions)
    for name in sets:
        assert reused[0][name] == pytest.approx(computed[0][name], rel=1e-9)
        assert np.allclose(reused[1][name], computed[1][name], rtol=1e-9)
    # a set and its copy draw the same subsets (paired): the difference has no spread
    same = fid_infinity_jackknife(ref, {"x": x, "x2": x.copy()}, 10, (0, 7), fractions)
    assert uncertainty.jackknife_std(same[1]["x"] - same[1]["x2"]) == 0.0
    with pytest.raises(ValueError, match="more than 2 distinct fractions"):
        fid_infinity_jackknife(ref, sets, 10, (0, 7), (0.5, 1.0))


def test_the_jackknife_std_of_fid_infinity_tracks_its_spread_over_redraws():
    """Over 24 independent redraws of two Gaussian sets (N = 400, d = 8), the mean jackknife std of FID∞ is within
    [0.6, 3] x the std of FID∞ itself (the FID's own jackknife band, tests/test_uncertainty.py, is similar)."""
    values, stds = [], []
    for r in range(24):
        x, y, _ = gaussians(400, 8, seed=50 + r)
        points, reps = fid_infinity_jackknife(y, {"x": x}, 20, (r, 1), (0.25, 0.5, 0.75, 1.0))
        values.append(points["x"])
        stds.append(uncertainty.jackknife_std(reps["x"]))
    ratio = np.mean(stds) / np.std(values, ddof=1)
    assert 0.6 < ratio < 3.0, ratio
