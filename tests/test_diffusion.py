"""Forward process, posterior, respacing and sampler steps of GaussianDiffusion."""

import numpy as np
import pytest
import torch

from ddpm_study.diffusion import GaussianDiffusion, spaced_timesteps
from ddpm_study.samplers import sample_loop
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


def test_q_sample_coefficients_at_both_ends(diffusion):
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps with alpha_bar_t = prod_{s<=t} (1 - beta_s),
    beta from linspace(1e-4, 0.02, 1000): at t = 0 alpha_bar = 1 - 1e-4; at t = T - 1 the full product."""
    alpha_bar = {0: 1 - 1e-4, 999: float(np.prod(1 - np.linspace(1e-4, 0.02, 1000)))}
    for t, ab in alpha_bar.items():
        ones, zeros = torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)
        signal = diffusion.q_sample(ones, torch.tensor([t]), zeros).item()
        noise = diffusion.q_sample(zeros, torch.tensor([t]), ones).item()
        assert signal == pytest.approx(np.sqrt(ab), rel=1e-6), t
        assert noise == pytest.approx(np.sqrt(1 - ab), rel=1e-5), t


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


def closed_form(t: int, T: int = 1000):
    """alpha_t, alpha_bar_t, alpha_bar_{t-1} and beta_t of the linear schedule, from the definitions."""
    betas = np.linspace(1e-4, 0.02, T)
    alpha_bar = np.cumprod(1 - betas)
    return 1 - betas[t], alpha_bar[t], (alpha_bar[t - 1] if t > 0 else 1.0), betas[t]


def clipped_x0(x, t, eps):
    _, ab, _, _ = closed_form(t)
    return np.clip((x - np.sqrt(1 - ab) * eps) / np.sqrt(ab), -1, 1)


def ddpm_step(x, t, z):
    """Ho et al. eq. 6-7 with x0 predicted from eps and clipped: the posterior mean
    (sqrt(ab_prev) beta x0 + sqrt(alpha) (1 - ab_prev) x_t) / (1 - ab), plus sqrt(beta~) z for t > 0."""
    alpha, ab, ab_prev, beta = closed_form(t)
    x0 = clipped_x0(x, t, dummy_eps(x, t))
    mean = (np.sqrt(ab_prev) * beta * x0 + np.sqrt(alpha) * (1 - ab_prev) * x) / (1 - ab)
    var = beta * (1 - ab_prev) / (1 - ab)
    return mean + (np.sqrt(var) * z if t > 0 else 0)


def ddim_step(x, t, t_prev, z, eta, clip=True):
    """Song et al. (2021) eq. 12 from t to t_prev (-1: to x_0), eps re-derived from the clipped x0."""
    betas = np.linspace(1e-4, 0.02, 1000)
    alpha_bar = np.cumprod(1 - betas)
    ab, ab_prev = alpha_bar[t], (alpha_bar[t_prev] if t_prev >= 0 else 1.0)
    eps = dummy_eps(x, t)
    x0 = (x - np.sqrt(1 - ab) * eps) / np.sqrt(ab)
    if clip:
        x0 = np.clip(x0, -1, 1)
        eps = (x - np.sqrt(ab) * x0) / np.sqrt(1 - ab)
    sigma = eta * np.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    return np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_prev - sigma**2) * eps + (sigma * z if t_prev >= 0 else 0)


def dummy_eps(x, t):
    return 0.5 * x + 1e-3 * t  # dummy_model in numpy


def draws(seed=0, shape=(2, 1, 2, 2)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).float(), torch.randn(shape, generator=g, dtype=torch.float64).float()


def test_one_ddpm_step_matches_the_posterior_in_closed_form(diffusion):
    x_t, noise = draws()
    out = diffusion.p_sample(dummy_model, x_t, torch.tensor([500, 0]), noise)["sample"]
    for i, t in enumerate((500, 0)):
        expected = ddpm_step(x_t[i].double().numpy(), t, noise[i].double().numpy())
        np.testing.assert_allclose(out[i].numpy(), expected, atol=2e-6, rtol=0)
    assert (out[1].abs() == 1).any()  # x0 was clipped in the last step, so the clipped branch is exercised


def test_one_ddim_step_matches_eq_12_and_is_deterministic(diffusion):
    x_t, noise = draws()
    out = diffusion.ddim_sample(dummy_model, x_t, torch.tensor([500, 0]), noise, eta=0.0)["sample"]
    out2 = diffusion.ddim_sample(dummy_model, x_t, torch.tensor([500, 0]), torch.zeros_like(noise), eta=0.0)["sample"]
    torch.testing.assert_close(out, out2)
    for i, t in enumerate((500, 0)):
        expected = ddim_step(x_t[i].double().numpy(), t, t - 1, 0.0, eta=0.0)
        np.testing.assert_allclose(out[i].numpy(), expected, atol=2e-6, rtol=0)
    x = x_t[0].double().numpy()
    assert (np.abs(clipped_x0(x, 500, dummy_eps(x, 500))) == 1).any()  # so eps is re-derived at t = 500


def test_ddim_loop_with_eta_matches_eq_12_step_by_step(diffusion):
    """The whole respaced loop with eta = 0.5: each step's noise is the generator's next draw."""
    spaced = diffusion.respace(4)
    ts = list(spaced.timestep_map.numpy())  # training timesteps 0, 333, 666, 999
    x_T = torch.randn(2, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    out, _ = sample_loop(spaced, dummy_model, x_T, torch.Generator().manual_seed(2), sampler="ddim", eta=0.5)
    gen = torch.Generator().manual_seed(2)
    x = x_T.double().numpy()
    for k in reversed(range(4)):
        z = torch.randn(x_T.shape, generator=gen).double().numpy()
        x = ddim_step(x, ts[k], ts[k - 1] if k else -1, z, eta=0.5)
    np.testing.assert_allclose(out.numpy(), x, atol=1e-5, rtol=0)
    noiseless, _ = sample_loop(spaced, dummy_model, x_T, torch.Generator().manual_seed(3), sampler="ddim", eta=0.0)
    assert not torch.allclose(out, noiseless)  # eta > 0 does add noise


def test_unclipped_prediction_keeps_x0_outside_the_data_range(diffusion):
    x_t = torch.full((1, 1, 1, 1), 3.0)  # predicts x0 far outside [-1, 1] at t = 10
    t = torch.tensor([10])
    raw = diffusion.p_mean_variance(dummy_model, x_t, t, clip_denoised=False)
    clipped = diffusion.p_mean_variance(dummy_model, x_t, t, clip_denoised=True)
    alpha, ab, ab_prev, beta = closed_form(10)
    x0 = (3.0 - np.sqrt(1 - ab) * dummy_eps(3.0, 10)) / np.sqrt(ab)
    assert x0 > 1 and raw["pred_x0"].item() == pytest.approx(x0, rel=1e-5) and clipped["pred_x0"].item() == 1.0
    mean = (np.sqrt(ab_prev) * beta * x0 + np.sqrt(alpha) * (1 - ab_prev) * 3.0) / (1 - ab)
    assert raw["mean"].item() == pytest.approx(mean, rel=1e-5)


def test_training_losses_is_the_simple_loss(diffusion):
    """Ho et al.'s L_simple per image: mean over pixels of (eps - eps_theta(x_t, t))^2."""
    g = torch.Generator().manual_seed(4)
    x0, eps = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1, torch.randn(3, 1, 4, 4, generator=g)
    t = torch.tensor([0, 300, 999])
    zero = diffusion.training_losses(lambda x, t: torch.zeros_like(x), x0, t, eps)
    torch.testing.assert_close(zero, eps.pow(2).mean(dim=(1, 2, 3)))
    ab = torch.from_numpy(np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[t.numpy()]).float().reshape(-1, 1, 1, 1)

    def oracle(x_t, tt):  # knows x0: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)
        assert torch.equal(tt, t)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    assert diffusion.training_losses(oracle, x0, t, eps).max().item() < 1e-6
    assert diffusion.training_losses(lambda x, t: eps + 0.5, x0, t, eps).tolist() == pytest.approx([0.25] * 3)


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


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_single_step_process_returns_the_clipped_x0_prediction(diffusion, sampler):
    """With one step (t = T - 1 only) alpha_bar_prev = 1: both samplers return clip(x0_hat(x_T)), noise-free."""
    x_T = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    model = lambda x, t: 0.99 * x  # noqa: E731  (x0_hat ~ 1.6 x_T: some pixels clipped, some not)
    x, _ = sample_loop(diffusion.respace(1), model, x_T, torch.Generator().manual_seed(0), sampler=sampler, eta=1.0)
    expected = clipped_x0(x_T.double().numpy(), 999, 0.99 * x_T.double().numpy())
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-5, rtol=0)
    assert (x.abs() == 1).any() and (x.abs() < 1).any()


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
    sample_loop(spaced, lambda x, t: (seen.append(t[0].item()), torch.zeros_like(x))[1], torch.zeros(1, 1, 2, 2),
                       torch.Generator().manual_seed(0))
    assert seen == [999, 749, 500, 250, 0]


def test_sample_loop_reproducible_and_records_frames(diffusion):
    spaced = diffusion.respace(10)
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    a, frames = sample_loop(spaced, dummy_model, x_T, torch.Generator().manual_seed(5), record_every=5)
    b, _ = sample_loop(spaced, dummy_model, x_T, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    assert len(frames) == 3  # x_T, after 5 steps, after 10 steps
    torch.testing.assert_close(frames[-1], a)



# --- v-prediction (Salimans & Ho 2022): model.prediction = v ---------------------------------------------
def test_v_conversions_are_the_closed_forms():
    """With x_t = a x_0 + s eps (a^2 + s^2 = 1) and v = a eps - s x_0: a model that returns the exact v gives back
    eps and x_0 exactly (to float32), and its training loss is 0."""
    full = GaussianDiffusion(get_betas("cosine", 1000, s=0.008, max_beta=0.999), prediction="v")
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.rand((6, 1, 4, 4), generator=gen) * 2 - 1, torch.randn((6, 1, 4, 4), generator=gen)
    t = torch.tensor([0, 10, 200, 500, 900, 999])
    x_t = full.q_sample(x0, t, eps)
    a = torch.from_numpy(full.alphas_cumprod_np)[t].float().sqrt().reshape(-1, 1, 1, 1)
    s = (1 - a**2).sqrt()
    v = a * eps - s * x0
    torch.testing.assert_close(full.v_target(x0, t, eps), v)
    exact = lambda x, tt: v  # noqa: E731 (the network at these x_t)
    eps_hat, x0_hat = full.predict_eps_x0(exact, x_t, t)
    torch.testing.assert_close(eps_hat, eps, atol=1e-5, rtol=0)
    torch.testing.assert_close(x0_hat, x0, atol=1e-5, rtol=0)
    assert full.training_losses(exact, x0, t, eps).max() < 1e-10


def test_an_oracle_v_model_samples_as_the_oracle_eps_model_does():
    """On the Gaussian toy data (tests/test_samplers.py) every sampler, fed the exact v through a v-diffusion,
    gives the samples the exact eps gives through an eps-diffusion, from the same x_T and noise."""
    from test_samplers import FULL, MU, S, exact_eps

    from ddpm_study.samplers import SAMPLERS

    eps_model = exact_eps(FULL)
    alpha_bar = torch.from_numpy(FULL.alphas_cumprod_np)

    def v_model(x, t):
        a = alpha_bar[t].float().reshape(-1, 1, 1, 1)
        e = eps_model(x, t)
        x0 = (x - (1 - a).sqrt() * e) / a.sqrt()
        return a.sqrt() * e - (1 - a).sqrt() * x0

    v_full = GaussianDiffusion(FULL.betas_np, prediction="v")
    for sampler in SAMPLERS:
        x_T = torch.randn((512, 3, 1, 1), generator=torch.Generator().manual_seed(1))
        ours, _ = sample_loop(FULL.respace(20), eps_model, x_T, torch.Generator().manual_seed(2), sampler=sampler)
        theirs, _ = sample_loop(v_full.respace(20), v_model, x_T, torch.Generator().manual_seed(2), sampler=sampler)
        torch.testing.assert_close(theirs, ours, atol=2e-4, rtol=0, msg=sampler)
        assert (ours.mean(0) - MU[0]).abs().max() < 0.1 and S.min() > 0  # a real sample, not a constant
