"""A model trained with schedule A sampled on schedule B's noise levels: the ᾱ-matching map."""

import numpy as np
import pytest
import torch

from ddpm_study.crossing import crossed, matched_timesteps
from ddpm_study.diffusion import GaussianDiffusion, spaced_timesteps
from ddpm_study.samplers import sample_loop
from ddpm_study.schedules import SCHEDULES, get_betas


def process(name):
    return GaussianDiffusion(get_betas(name, 1000, **SCHEDULES[name].defaults()))


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_identity_when_trained_and_sampled_alike(name):
    d = process(name)
    keep = spaced_timesteps(1000, 20)
    t, clamped = matched_timesteps(d.alphas_cumprod_np, d.respace(20).alphas_cumprod_np)  # ᾱ via respaced betas
    np.testing.assert_allclose(t, keep, atol=1e-6)
    assert not clamped.any()


def test_monotone_interpolated_and_clamped_at_the_ends():
    linear, cosine = process("linear"), process("cosine")
    ab = linear.alphas_cumprod_np
    midway = np.exp((np.log(ab[10]) + np.log(ab[11])) / 2)  # halfway in log alpha_bar between t = 10 and 11
    t, clamped = matched_timesteps(ab, [midway])
    assert t[0] == pytest.approx(10.5) and not clamped[0]
    # cosine's noise levels on linear's model: increasing in t; both ends lie beyond linear's range
    # (alpha_bar at t = 0: 0.99996 > 0.9999; at T: 2.4e-9 < 4.0e-5), so they are clamped and flagged.
    t, clamped = matched_timesteps(ab, cosine.respace(50).alphas_cumprod_np)
    assert np.all(np.diff(t) > 0) and t[0] == 0 and t[-1] == 999
    assert cosine.alphas_cumprod_np[0] > ab[0] and cosine.alphas_cumprod_np[-1] < ab[-1]
    assert clamped.tolist() == [True] + [False] * 48 + [True]


def test_crossed_sampler_with_one_schedule_is_the_ordinary_sampler():
    d = process("sigmoid")
    spaced = d.respace(10)
    model = lambda x, t: 0.3 * x + 1e-3 * t.reshape(-1, 1, 1, 1).float()  # noqa: E731  (sees the timestep)
    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    ordinary, _ = sample_loop(spaced, model, x_T, torch.Generator().manual_seed(1))
    wrapped, runner, t, clamped = crossed(model, d, spaced)
    ours, _ = sample_loop(runner, wrapped, x_T, torch.Generator().manual_seed(1))
    torch.testing.assert_close(ours, ordinary, atol=1e-5, rtol=0)
    assert not clamped.any() and list(np.round(t)) == list(spaced.timestep_map.numpy())
