"""The four beta schedules: endpoints, shapes, and betas and alpha_bar_T against their closed forms."""

import math

import numpy as np
import pytest

from ddpm_study import schedules
from ddpm_study.schedules import get_betas, summarize

PARAMS = {
    "linear": {"beta_start": 1e-4, "beta_end": 0.02},
    "quadratic": {"beta_start": 1e-4, "beta_end": 0.02},
    "sigmoid": {"beta_start": 1e-4, "beta_end": 0.02, "sigmoid_range": 6.0},
    "cosine": {"s": 0.008, "max_beta": 0.999},
}


def closed_form_betas(name: str, T: int = 1000) -> np.ndarray:
    """Each schedule's betas written out from its definition, independently of ``schedules.py``."""
    if name == "linear":
        return np.linspace(1e-4, 0.02, T)
    if name == "quadratic":
        return np.linspace(1e-4**0.5, 0.02**0.5, T) ** 2
    if name == "sigmoid":
        return 1e-4 + (0.02 - 1e-4) / (1 + np.exp(-np.linspace(-6, 6, T)))
    # cosine (Nichol & Dhariwal 2021, eq. 17): beta_t = min(1 - f(t) / f(t - 1), 0.999), f(t) = cos^2(...)
    f = np.cos((np.arange(T + 1) / T + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.minimum(1 - f[1:] / f[:-1], 0.999)


# alpha_bar_T = prod_t (1 - beta_t) of the closed forms above
ALPHA_BAR_T = {name: float(np.prod(1 - closed_form_betas(name))) for name in PARAMS}


@pytest.mark.parametrize("name", list(PARAMS))
def test_betas_in_range_and_alpha_bar_decreasing(name):
    betas = get_betas(name, 1000, **PARAMS[name])
    assert betas.shape == (1000,) and betas.dtype == np.float64
    assert np.all((betas > 0) & (betas < 1))
    alpha_bar = np.cumprod(1 - betas)
    assert np.all(np.diff(alpha_bar) < 0)


@pytest.mark.parametrize("name", list(PARAMS))
def test_betas_and_alpha_bar_T_match_the_closed_forms(name):
    betas = get_betas(name, 1000, **PARAMS[name])
    np.testing.assert_allclose(betas, closed_form_betas(name), rtol=1e-9)
    assert summarize(betas)["alpha_bar_T"] == pytest.approx(ALPHA_BAR_T[name], rel=1e-9)
    # The study's reading of them (reports/main/README.md): cosine ends nearest pure noise, quadratic farthest.
    assert ALPHA_BAR_T["cosine"] < 1e-8 < ALPHA_BAR_T["sigmoid"] < ALPHA_BAR_T["linear"] < ALPHA_BAR_T["quadratic"]


def test_linear_quadratic_sigmoid_endpoints():
    lin = get_betas("linear", 1000, **PARAMS["linear"])
    assert lin[0] == pytest.approx(1e-4) and lin[-1] == pytest.approx(0.02)
    quad = get_betas("quadratic", 1000, **PARAMS["quadratic"])
    assert quad[0] == pytest.approx(1e-4) and quad[-1] == pytest.approx(0.02)
    assert np.sqrt(quad)[500] == pytest.approx(np.linspace(0.01, math.sqrt(0.02), 1000)[500])
    sig = get_betas("sigmoid", 1000, **PARAMS["sigmoid"])
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert sig[0] == pytest.approx(s(-6) * (0.02 - 1e-4) + 1e-4)
    assert sig[-1] == pytest.approx(s(6) * (0.02 - 1e-4) + 1e-4)


def test_cosine_matches_closed_form():
    T, s = 1000, 0.008
    alpha_bar = np.cumprod(1 - get_betas("cosine", T, **PARAMS["cosine"]))
    t = np.arange(1, T + 1)
    closed = np.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    # Clipping at max_beta only acts in the last few steps.
    np.testing.assert_allclose(alpha_bar[:-5], closed[:-5], rtol=1e-9)
    assert get_betas("cosine", T, **PARAMS["cosine"]).max() <= 0.999


def test_endpoints_rescaled_by_1000_over_T():
    """improved-diffusion's convention (not diffusers'): beta endpoints scale with 1000 / T."""
    lin = get_betas("linear", 250, **PARAMS["linear"])
    assert lin[0] == pytest.approx(4e-4) and lin[-1] == pytest.approx(0.08)
    for name in PARAMS:
        assert summarize(get_betas(name, 250, **PARAMS[name]))["alpha_bar_T"] < 1e-3


def test_log_snr_range_recorded():
    out = summarize(get_betas("linear", 1000, **PARAMS["linear"]))
    assert out["log_snr_max"] == pytest.approx(math.log((1 - 1e-4) / 1e-4))
    assert out["log_snr_min"] == pytest.approx(math.log(ALPHA_BAR_T["linear"]), abs=1e-3)


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="linear, quadratic, sigmoid, cosine"):
        get_betas("exponential", 1000)
    assert list(schedules.SCHEDULES) == ["linear", "quadratic", "sigmoid", "cosine"]


def test_betas_outside_unit_interval_rejected():
    with pytest.raises(ValueError, match="outside"):
        get_betas("linear", 10, beta_start=1e-4, beta_end=0.02)  # 0.02 * 1000/10 = 2
