"""DPM-Solver++(2M) (``samplers.dpmpp2m``) checked against an independent implementation and a closed form.

- diffusers' ``DPMSolverMultistepScheduler`` (dpmsolver++, order 2, x̂₀ thresholded at 1, which is the
  project's clip to [-1, 1], final sigma 0) on a trained model: the same betas, the same timesteps
  handed over, the same x_T: the same samples to float32 round-off, at 10 and 20 steps, for the linear
  and the cosine schedule; and with diffusers' own lambda-clipped timesteps for cosine.
- a Gaussian toy data set with its exact score (as in tests/test_samplers.py): the solver converges at
  order 2 to the exact probability-flow ODE solution, where DDIM (its first-order special case) converges
  at order 1.
"""

import numpy as np
import pytest
import torch

from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.samplers import get, sample_loop

diffusers = pytest.importorskip("diffusers", reason="diffusers is a test dependency: pip install -e .[test]")


def diffusers_dpmpp2m(model, betas: np.ndarray, timesteps, x_T: torch.Tensor, **config) -> torch.Tensor:
    """diffusers' DPM-Solver++(2M) with x̂₀ clipped to [-1, 1], on ``timesteps`` (descending) or its own."""
    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=len(betas), trained_betas=betas, algorithm_type="dpmsolver++", solver_order=2,
        thresholding=True, sample_max_value=1.0, final_sigmas_type="zero", lower_order_final=True, **config)
    if isinstance(timesteps, int):
        scheduler.set_timesteps(num_inference_steps=timesteps)
    else:
        scheduler.set_timesteps(timesteps=list(timesteps))
    x = x_T.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(model(x, t.repeat(len(x))), t, x).prev_sample
    return x, scheduler.timesteps.numpy()


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [10, 20])
def test_dpmpp2m_matches_diffusers(trained, schedule, steps):
    cfg, model = trained
    full = GaussianDiffusion(cfg.betas(schedule))
    spaced = full.respace(steps)
    x_T = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours, _ = sample_loop(spaced, model, x_T, torch.Generator().manual_seed(2), sampler="dpmpp2m")
    theirs, _ = diffusers_dpmpp2m(model, cfg.betas(schedule), spaced.timestep_map.numpy()[::-1], x_T)
    assert (ours - theirs).abs().max() < 1e-3  # float32 round-off (diffusers keeps sigma in float32); a level is 8e-3
    assert ours.abs().max() <= 1 and ours.std() > 0.05


def test_dpmpp2m_on_diffusers_lambda_clipped_timesteps(trained):
    """The cosine fix of diffusers PR 3314 (lambda_min_clipped = -5.1) picks the timesteps; ours run on them alike."""
    cfg, model = trained
    full = GaussianDiffusion(cfg.betas("cosine"))
    x_T = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    theirs, timesteps = diffusers_dpmpp2m(model, cfg.betas("cosine"), 10, x_T, lambda_min_clipped=-5.1)
    assert timesteps[0] < 999  # the noisiest timesteps were clipped
    ours, _ = sample_loop(full.subsequence(timesteps[::-1]), model, x_T, torch.Generator().manual_seed(2), sampler="dpmpp2m")
    assert (ours - theirs).abs().max() < 1e-3


# A process whose log-SNR is linear in t (lambda from -5 to 4.6, the linear schedule's range at T = 1000) on
# a fine grid, so that evenly spaced steps are evenly spaced in lambda, the variable the solver steps in.
# On the study's linear schedule itself the steps near t = 0 shrink only logarithmically in lambda as the
# step count grows (lambda falls 0.4 from t = 0 to t = 1), which caps the order any solver shows there.
LAMBDAS = np.linspace(4.6, -5.0, 4096)
ALPHA_BAR = 1 / (1 + np.exp(-2 * LAMBDAS))  # alpha_bar = sigmoid(2 lambda)
UNIFORM_LAMBDA = GaussianDiffusion(1 - ALPHA_BAR / np.append(1.0, ALPHA_BAR[:-1]))
# Toy data x_0 ~ N(MU, S^2) per coordinate, narrow enough that the x̂₀ clip to [-1, 1] never acts (6 sigma):
# a clip that acts is not smooth, and no solver keeps its order through it.
MU = torch.tensor([0.1, -0.1, 0.0]).reshape(1, 3, 1, 1)
S = torch.tensor([0.15, 0.1, 0.12]).reshape(1, 3, 1, 1)


def exact_eps(diffusion: GaussianDiffusion):
    """The exact eps(x, t) of the toy data: x_t ~ N(sqrt(a) MU, a S^2 + 1 - a), a = alpha_bar_t."""
    alpha_bar = torch.from_numpy(diffusion.alphas_cumprod_np)

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alpha_bar[t].float().reshape(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * S**2 + 1 - a)

    return eps


def toy_error(sampler: str, steps: int, full: GaussianDiffusion = UNIFORM_LAMBDA, n: int = 20_000) -> float:
    """Mean |x_0 - exact| on the toy data: exact = the denoiser at t = 0 applied to the exact ODE solution at t = 0,
    so that the last step's map (x̂₀ at t = 0, the same for every step count) is no part of the error."""
    spaced = full.respace(steps)
    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn((n, 3, 1, 1), generator=gen)
    x_0, _ = sample_loop(spaced, exact_eps(full), x_T, gen, sampler=sampler)
    a = torch.from_numpy(spaced.alphas_cumprod_np).float()
    a_T, a_0 = a[-1], a[0]
    z = (x_T - a_T.sqrt() * MU) / (a_T * S**2 + 1 - a_T).sqrt()  # standardised value: kept along the flow
    x_t0 = a_0.sqrt() * MU + (a_0 * S**2 + 1 - a_0).sqrt() * z
    exact = MU + a_0.sqrt() * S**2 / (a_0 * S**2 + 1 - a_0) * (x_t0 - a_0.sqrt() * MU)  # E[x_0 | x_t0]
    return (x_0 - exact).abs().mean().item()


def test_dpmpp2m_converges_at_order_two_and_ddim_at_order_one():
    """Measured here: errors 3.4e-4, 8.6e-5, 2.1e-5 at 40, 80, 160 steps (orders 1.99, 2.00); DDIM 1.00, 1.00."""
    steps = (40, 80, 160)
    orders = {}
    for sampler in ("dpmpp2m", "ddim"):
        err = [toy_error(sampler, k) for k in steps]
        orders[sampler] = [np.log2(a / b) for a, b in zip(err, err[1:])]
    assert all(1.8 < o < 2.2 for o in orders["dpmpp2m"]), orders
    assert all(0.9 < o < 1.1 for o in orders["ddim"]), orders


def test_dpmpp2m_is_one_network_call_per_step():
    assert get("dpmpp2m").model_calls(10) == 10 and not get("dpmpp2m").stochastic
