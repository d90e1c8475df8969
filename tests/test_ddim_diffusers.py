"""The DDIM sampler checked against an independent implementation: diffusers' ``DDIMScheduler``
(a test-only dependency), on a trained model, from the same x_T with the same per-step noise.

Two differences in diffusers are bridged (``benchmarks/ddim_variants.diffusers_ddim`` says how): by
default it keeps the raw ε after clipping x̂₀, where this project, like improved-diffusion and GLIDE,
re-derives ε from the clipped x̂₀ (``use_clipped_model_output=True``); and it always steps from t to
t − T // steps, the project's respaced gap only when gaps are uniform (``spaced_timesteps`` keeps
t = T − 1, so they rarely are), so the scheduler runs the respaced process itself.
"""

import numpy as np
import pytest
import torch

from benchmarks.ddim_variants import diffusers_ddim
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.samplers import sample_loop


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [10, 20])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_matches_diffusers(trained, schedule, steps, eta):
    cfg, model = trained
    spaced = GaussianDiffusion(cfg.betas(schedule)).respace(steps)
    gaps = np.diff(spaced.timestep_map.numpy())
    x_T = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours, _ = sample_loop(spaced, model, x_T, torch.Generator().manual_seed(2), sampler="ddim", eta=eta)
    theirs = diffusers_ddim(model, spaced, x_T, torch.Generator().manual_seed(2), eta)
    assert (ours - theirs).abs().max() < 1e-3  # float32 round-off; a pixel level is 2/255 = 8e-3
    assert ours.abs().max() <= 1 and ours.std() > 0.05  # real images in range, not a constant
    if steps == 20:
        assert len(set(gaps)) > 1  # non-uniform gaps: the case diffusers' default stepping gets wrong


def test_diffusers_default_raw_eps_is_another_sampler(trained):
    """With diffusers' default (raw ε kept after clipping) the samples differ: the option matters."""
    cfg, model = trained
    spaced = GaussianDiffusion(cfg.betas("linear")).respace(10)
    x_T = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours, _ = sample_loop(spaced, model, x_T, torch.Generator().manual_seed(2), sampler="ddim", eta=0.0)
    raw = diffusers_ddim(model, spaced, x_T, torch.Generator().manual_seed(2), 0.0, rederive=False)
    assert (ours - raw).abs().max() > 0.1
