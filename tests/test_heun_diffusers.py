"""The probability-flow ODE sampler (``ode``: Heun, Karras et al. 2022 alg. 1) checked against an independent
implementation: diffusers' ``HeunDiscreteScheduler`` on a trained model, the same betas, the same timesteps handed
over, the same x_T. diffusers steps the VE-scaled sample x / sqrt(alpha_bar) in sigma = sqrt((1 - abar) / abar)
with eps as the slope, a second-order stage at every step but the last (Euler to sigma = 0): the same method as
``GaussianDiffusion.ode_sample``, so the samples agree to float32 round-off (diffusers keeps sigma in float32).
Both blow up alike where the unclipped ODE does (cosine at few steps): that failure is the method's, not ours."""

import pytest
import torch

from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.samplers import sample_loop
from test_dpm_solver import trained  # noqa: F401 (the module's trained tiny U-Net fixture)

diffusers = pytest.importorskip("diffusers", reason="diffusers is a test dependency: pip install -e .[test]")


def diffusers_heun(model, betas, timesteps, x_T: torch.Tensor) -> torch.Tensor:
    scheduler = diffusers.HeunDiscreteScheduler(num_train_timesteps=len(betas), trained_betas=betas,
                                                prediction_type="epsilon")
    scheduler.set_timesteps(timesteps=list(timesteps))
    x = x_T * scheduler.init_noise_sigma  # x_T ~ N(0, I) at the VP scale -> x / sqrt(alpha_bar_T)
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = model(scheduler.scale_model_input(x, t), t.repeat(len(x)))
            x = scheduler.step(out, t, x).prev_sample
    return x


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [5, 10])
def test_ode_matches_diffusers_heun(trained, schedule, steps):  # noqa: F811
    cfg, model = trained
    spaced = GaussianDiffusion(cfg.betas(schedule)).respace(steps)
    x_T = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours, _ = sample_loop(spaced, model, x_T, torch.Generator().manual_seed(2), sampler="ode")
    theirs = diffusers_heun(model, cfg.betas(schedule), spaced.timestep_map.numpy()[::-1], x_T)
    # Relative to the samples' size: unclipped, the ODE on the cosine schedule starts at sigma_T ~ 2e4 and these
    # barely trained models carry their eps error to samples of size ~1e4 — in both implementations alike.
    scale = max(1.0, float(ours.abs().max()))
    assert (ours - theirs).abs().max() <= 1e-3 * scale, float((ours - theirs).abs().max())
