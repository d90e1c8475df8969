"""Forward process, posterior, respacing and sampler steps of GaussianDiffusion."""

import numpy as np
import pytest
import torch

from ddpm_study.diffusion import GaussianDiffusion, spaced_timesteps
from ddpm_study.schedules import get_betas


@pytest.fixture
def diffusion():
    return GaussianDiffusion(get_betas("linear", 1000, beta_start=1e-4, beta_end=0.02))


def dummy_model(x, t):
    """A fixed, seed-free stand-in for eps_theta."""
    return 0.5 * x + 1e-3 * t.float().reshape(-1, 1, 1, 1)


def test_q_sample_statistics(diffusion):
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1, 2, 2), 0.7)
    t = torch.full((20000,), 300)
    x_t = diffusion.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    ab = diffusion.alphas_cumprod_np[300]
    assert x_t.mean().item() == pytest.approx(np.sqrt(ab) * 0.7, abs=0.01)
    assert x_t.var().item() == pytest.approx(1 - ab, rel=0.02)


def test_q_sample_endpoints(diffusion):
    x0, eps = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    assert diffusion.q_sample(x0, torch.tensor([0]), eps).flatten()[0].item() == pytest.approx(np.sqrt(1 - 1e-4), rel=1e-6)


def test_posterior_matches_direct_computation(diffusion):
    """Bayes' rule for Gaussians: q(x_{t-1}|x_t,x0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x0)."""
    betas, ab = diffusion.betas_np, diffusion.alphas_cumprod_np
    for t in (1, 10, 500, 999):
        prec = 1 / betas[t] * (1 - betas[t]) + 1 / (1 - ab[t - 1])  # 1/var of the product of Gaussians
        var = 1 / prec
        x0, x_t = 0.3, -1.2
        mean = var * (np.sqrt(1 - betas[t]) * x_t / betas[t] + np.sqrt(ab[t - 1]) * x0 / (1 - ab[t - 1]))
        m, v, _ = diffusion.q_posterior_mean_variance(
            torch.full((1, 1, 1, 1), x0, dtype=torch.float64), torch.full((1, 1, 1, 1), x_t, dtype=torch.float64), torch.tensor([t])
        )
        assert m.item() == pytest.approx(mean, rel=1e-5)
        assert v.item() == pytest.approx(var, rel=1e-5)


def test_predict_x0_inverts_q_sample(diffusion):
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.rand(4, 1, 3, 3, generator=g), torch.randn(4, 1, 3, 3, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(diffusion.predict_x0_from_eps(diffusion.q_sample(x0, t, eps), t, eps), x0, atol=2e-3, rtol=0)


def test_one_ddpm_step_recorded(diffusion):
    g = torch.Generator().manual_seed(0)
    x_t, noise = torch.randn(2, 1, 2, 2, generator=g), torch.randn(2, 1, 2, 2, generator=g)
    out = diffusion.p_sample(dummy_model, x_t, torch.tensor([500, 0]), noise)["sample"]
    expected = torch.tensor(RECORDED_DDPM)
    torch.testing.assert_close(out.flatten(), expected, atol=1e-5, rtol=0)


def test_one_ddim_step_recorded_and_deterministic(diffusion):
    g = torch.Generator().manual_seed(0)
    x_t, noise = torch.randn(2, 1, 2, 2, generator=g), torch.randn(2, 1, 2, 2, generator=g)
    out = diffusion.ddim_sample(dummy_model, x_t, torch.tensor([500, 0]), noise, eta=0.0)["sample"]
    out2 = diffusion.ddim_sample(dummy_model, x_t, torch.tensor([500, 0]), torch.zeros_like(noise), eta=0.0)["sample"]
    torch.testing.assert_close(out, out2)
    torch.testing.assert_close(out.flatten(), torch.tensor(RECORDED_DDIM), atol=1e-5, rtol=0)


def test_ddim_eta_one_has_ddpm_variance(diffusion):
    """With eta = 1, DDIM's sigma_t^2 equals the DDPM posterior variance."""
    t = torch.tensor([400])
    x = torch.zeros(1, 1, 1, 1)
    a = diffusion.ddim_sample(lambda x, t: torch.zeros_like(x), x, t, torch.ones_like(x), eta=1.0)["sample"]
    b = diffusion.ddim_sample(lambda x, t: torch.zeros_like(x), x, t, torch.zeros_like(x), eta=1.0)["sample"]
    assert (a - b).item() == pytest.approx(np.sqrt(diffusion.posterior_variance[400].item()), rel=1e-5)


def test_no_noise_added_at_last_step(diffusion):
    x = torch.zeros(1, 1, 1, 1)
    a = diffusion.p_sample(dummy_model, x, torch.tensor([0]), torch.ones_like(x))["sample"]
    b = diffusion.p_sample(dummy_model, x, torch.tensor([0]), torch.zeros_like(x))["sample"]
    torch.testing.assert_close(a, b)


def test_single_step_process_samples(diffusion):
    x, _ = diffusion.respace(1).sample_loop(dummy_model, torch.randn(2, 1, 3, 3), torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all() and x.abs().max() <= 1  # one step from x_T straight to the clipped x0


def test_spaced_timesteps():
    assert list(spaced_timesteps(1000, 1000)) == list(range(1000))
    s = spaced_timesteps(1000, 10)
    assert s[0] == 0 and s[-1] == 999 and len(set(s)) == 10
    assert list(spaced_timesteps(1000, 1)) == [999]
    with pytest.raises(ValueError):
        spaced_timesteps(1000, 1001)


def test_respacing_keeps_alphas_cumprod(diffusion):
    spaced = diffusion.respace(50)
    keep = spaced_timesteps(1000, 50)
    np.testing.assert_allclose(spaced.alphas_cumprod_np, diffusion.alphas_cumprod_np[keep], rtol=1e-12)
    assert list(spaced.timestep_map.numpy()) == list(keep)
    full = diffusion.respace(1000)
    np.testing.assert_allclose(full.betas_np, diffusion.betas_np, rtol=1e-10)


def test_model_sees_training_timesteps_when_respaced(diffusion):
    seen = []
    spaced = diffusion.respace(5)
    spaced.sample_loop(lambda x, t: (seen.append(t[0].item()), torch.zeros_like(x))[1], torch.zeros(1, 1, 2, 2),
                       torch.Generator().manual_seed(0))
    assert seen == [999, 749, 500, 250, 0]


def test_sample_loop_reproducible_and_records_frames(diffusion):
    spaced = diffusion.respace(10)
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    a, frames = spaced.sample_loop(dummy_model, x_T, torch.Generator().manual_seed(5), record_every=5)
    b, _ = spaced.sample_loop(dummy_model, x_T, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    assert len(frames) == 3  # x_T, after 5 steps, after 10 steps
    torch.testing.assert_close(frames[-1], a)


# Recorded from this implementation (regression pins; the maths is pinned by the tests above).
RECORDED_DDPM = [1.462859, -0.335195, -2.228818, 0.581306, -1.0, -1.0, 0.40135, 0.833878]
RECORDED_DDIM = [1.541869, -0.294836, -2.179388, 0.567173, -1.0, -1.0, 0.40135, 0.833878]
