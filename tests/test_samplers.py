"""The four reverse samplers on a Gaussian toy data set whose score is known exactly.

Data: three independent coordinates x_0 ~ N(mu, s^2) (one "image" of 3 channels, 1x1). Then
x_t ~ N(sqrt(a) mu, a s^2 + 1 - a) with a = alpha_bar_t, and the exact noise prediction is
eps(x, t) = sqrt(1 - a) (x - sqrt(a) mu) / (a s^2 + 1 - a). With it, every sampler's output
distribution must approach N(mu, s^2) as the number of steps grows, at the rate its method
promises: Euler-Maruyama (weak order 1) on the reverse SDE, Heun (order 2) on the probability-flow
ODE, whose exact solution is known here: each coordinate keeps its standardised value
(x_t - sqrt(a) mu) / sqrt(a s^2 + 1 - a) along the flow.
"""

import numpy as np
import pytest
import torch

from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study import samplers
from ddpm_study.samplers import SAMPLERS, model_calls, sample_loop
from ddpm_study.schedules import get_betas

MU = torch.tensor([0.3, -0.2, 0.0]).reshape(1, 3, 1, 1)
S = torch.tensor([0.3, 0.15, 0.25]).reshape(1, 3, 1, 1)  # small enough that DDPM/DDIM's x_0 clipping stays idle
FULL = GaussianDiffusion(get_betas("linear", 1000, beta_start=1e-4, beta_end=0.02))


def exact_eps(diffusion: GaussianDiffusion):
    """The exact eps(x, t) of the toy data under ``diffusion`` (t: the training timestep the model sees)."""
    alpha_bar = torch.from_numpy(diffusion.alphas_cumprod_np)

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alpha_bar[t].float().reshape(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * S**2 + 1 - a)

    return eps


def run(sampler: str, steps: int, n: int = 100_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, GaussianDiffusion]:
    spaced = FULL.respace(steps)
    gen = torch.Generator().manual_seed(seed)
    x_T = torch.randn((n, 3, 1, 1), generator=gen)
    x_0, _ = sample_loop(spaced, exact_eps(FULL), x_T, gen, sampler=sampler)
    return x_T, x_0, spaced


def variance_error(x_0: torch.Tensor) -> float:
    return (x_0.var(0).flatten() - S.flatten() ** 2).abs().max().item()


@pytest.fixture(scope="module")
def errors() -> dict[str, list[float]]:
    """Largest per-coordinate variance error of each sampler at 10, 20, 40 and 80 steps (same noise)."""
    return {s: [variance_error(run(s, k)[1]) for k in (10, 20, 40, 80)] for s in SAMPLERS}


def test_every_sampler_approaches_the_data_distribution(errors):
    for sampler in SAMPLERS:
        err = errors[sampler]
        # DPM-Solver++(2M) is the exception at 10 -> 20 steps (measured: 0.040, then 0.052): on evenly spaced t the
        # lambda steps near t = 0 are large and unequal, and its second-order correction overshoots there. From
        # 20 steps on it falls like the others (tests/test_dpm_solver.py: order 2 where steps are even in lambda).
        tail = err[1:] if sampler == "dpmpp2m" else err
        assert all(a > b for a, b in zip(tail, tail[1:])), (sampler, err)  # variance error falls with the steps
        assert err[-1] < 0.35 * err[0], (sampler, err)
        _, x_0, _ = run(sampler, 80)
        assert (x_0.mean(0).flatten() - MU.flatten()).abs().max() < 0.01, sampler  # means: right at any step count
        assert err[-1] < 0.025, (sampler, err)  # s^2 is 0.09, 0.0225, 0.0625


def test_euler_maruyama_converges_at_weak_order_one(errors):
    """Halving the step halves the error in distribution (weak order 1): the ratios are near 2."""
    err = errors["sde"]
    ratios = [a / b for a, b in zip(err[1:], err[2:])]  # 20 -> 40 -> 80 steps (10 steps is pre-asymptotic)
    assert all(1.6 < r < 2.8 for r in ratios), (err, ratios)


def test_heun_on_the_probability_flow_ode_converges_at_order_two():
    """Sample by sample against the exact flow map: halving the step quarters the error."""
    err = []
    for k in (10, 20, 40, 80):
        x_T, x_0, spaced = run("ode", k, n=1000)
        a = float(spaced.alphas_cumprod[-1])  # the respaced process starts at alpha_bar of t = T - 1
        exact = MU + S * (x_T - a**0.5 * MU) / (a * S**2 + 1 - a) ** 0.5
        err.append((x_0 - exact).abs().max().item())
    ratios = [a / b for a, b in zip(err, err[1:])]
    assert all(3.3 < r < 6.0 for r in ratios), (err, ratios)
    assert err[-1] < 0.01, err


def test_ode_sampler_is_deterministic_and_uses_two_model_calls_per_step_but_the_last():
    calls = []
    eps = exact_eps(FULL)

    def counting(x, t):
        calls.append(len(x))
        return eps(x, t)

    spaced = FULL.respace(7)
    x_T = torch.randn((4, 3, 1, 1), generator=torch.Generator().manual_seed(1))
    a, _ = sample_loop(spaced, counting, x_T, torch.Generator().manual_seed(2), sampler="ode")
    b, _ = sample_loop(spaced, counting, x_T, torch.Generator().manual_seed(3), sampler="ode")
    assert torch.equal(a, b)
    assert len(calls) == 2 * model_calls("ode", spaced.num_timesteps) == 2 * 13
    assert model_calls("ddpm", spaced.num_timesteps) == model_calls("sde", spaced.num_timesteps) == 7


def test_heuns_first_stage_is_ddim():
    """The Euler step of the ODE in (x / sqrt(alpha_bar), sigma) is DDIM with eta = 0 (at t = 0 Heun is Euler)."""
    spaced = FULL.respace(10)
    x = 0.2 * torch.randn((8, 3, 1, 1), generator=torch.Generator().manual_seed(0))  # DDIM's x_0 clip stays idle
    t = torch.zeros(8, dtype=torch.long)
    noise = torch.zeros_like(x)
    ode = spaced.ode_sample(exact_eps(FULL), x, t, noise, 0)["sample"]
    ddim = spaced.ddim_sample(exact_eps(FULL), x, t, noise, eta=0.0)["sample"]
    torch.testing.assert_close(ode, ddim, rtol=0, atol=1e-5)


def test_euler_maruyama_is_ancestral_sampling_to_first_order():
    """Song et al. 2021b, eq. 47: ancestral sampling x' = (x + beta s) / sqrt(1 - beta) + sqrt(beta) z, and
    DDPM's posterior mean (Ho et al. eq. 11) is exactly its mean; Euler-Maruyama's mean differs by O(beta^2)."""
    x = torch.randn((64, 3, 1, 1), generator=torch.Generator().manual_seed(0))
    gaps = []
    for beta in (0.04, 0.02, 0.01, 0.005):
        one = GaussianDiffusion(np.array([0.5, beta]))  # index 1 is a step with this beta (noise is added there)
        t = torch.ones(64, dtype=torch.long)
        a = one.alphas_cumprod_np[1]
        # Toy data on this two-step process: the score of N(sqrt(a) mu, a s^2 + 1 - a).
        eps = lambda x, tt: (1 - a) ** 0.5 * (x - a**0.5 * MU) / (a * S**2 + 1 - a)  # noqa: E731
        s = one.score(eps, x, t)
        ancestral = (x + beta * s) / (1 - beta) ** 0.5
        posterior = one.p_mean_variance(eps, x, t, clip_denoised=False)["mean"]
        torch.testing.assert_close(posterior, ancestral, rtol=0, atol=2e-6)
        em = one.sde_sample(eps, x, t, torch.zeros_like(x))["sample"]
        gaps.append((em - ancestral).abs().max().item())
    ratios = [g / h for g, h in zip(gaps, gaps[1:])]
    assert all(3.5 < r < 4.5 for r in ratios), (gaps, ratios)  # O(beta^2): a quarter per halving


def test_euler_maruyama_and_ancestral_sampling_follow_the_same_path_from_the_same_noise():
    """Both discretise the same reverse SDE and draw the same per-step noise, so with more steps their
    samples converge to each other path by path (they differ by O(beta) per unit time)."""
    x_T = torch.randn((16, 3, 1, 1), generator=torch.Generator().manual_seed(0))
    gaps = []
    for k in (100, 1000):
        spaced = FULL.respace(k)
        out = {s: sample_loop(spaced, exact_eps(FULL), x_T, torch.Generator().manual_seed(9), sampler=s)[0]
               for s in ("ddpm", "sde")}
        gaps.append((out["ddpm"] - out["sde"]).abs().mean().item())
    assert gaps[1] < 0.01 and gaps[0] > 5 * gaps[1], gaps


def test_an_nfe_budget_buys_the_most_steps_that_fit():
    for name in samplers.SAMPLERS:
        for nfe in range(1, 60):
            steps = samplers.steps_within(name, nfe)
            assert samplers.model_calls(name, steps) <= nfe or steps == 1
            assert samplers.model_calls(name, steps + 1) > nfe


def test_the_start_bound_is_dpm_solvers_lambda_clip_and_edms_sigma_max():
    """sigma <= e^5.1 keeps exactly the timesteps with lambda = log(alpha / sigma) >= -5.1 (diffusers'
    lambda_min_clipped), computed here from the betas independently; a reverse process then starts at the
    largest of them, and a bound below every sigma is refused."""
    betas = get_betas("cosine", 1000, s=0.008, max_beta=0.999)
    full = GaussianDiffusion(betas)
    abar = np.cumprod(1 - betas)
    lam = np.log(np.sqrt(abar)) - np.log(np.sqrt(1 - abar))
    kept = samplers.start_below(full, float(np.exp(5.1)))
    assert kept.timestep_map.tolist() == np.flatnonzero(lam >= -5.1).tolist()
    spaced = samplers.reverse_process(full, 10, "linspace", 80.0)
    sigma = np.sqrt((1 - abar) / abar)
    assert int(spaced.timestep_map[-1]) == int(np.flatnonzero(sigma <= 80.0)[-1]) < 999
    assert np.allclose(spaced.alphas_cumprod_np, abar[spaced.timestep_map.numpy()])
    assert samplers.reverse_process(full, 10).timestep_map.tolist() == full.respace(10).timestep_map.tolist()
    with pytest.raises(ValueError, match="no timestep is left"):
        samplers.start_below(full, 1e-4)
