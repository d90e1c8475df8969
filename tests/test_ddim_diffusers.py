"""The DDIM sampler checked against an independent implementation: diffusers' ``DDIMScheduler``
(a test-only dependency), on a trained model, from the same x_T with the same per-step noise.

Two differences in diffusers are bridged, both as the DDIM write-up (issue 9) describes:
- by default it keeps the raw ε after clipping x̂₀; this project, like improved-diffusion and GLIDE,
  re-derives ε from the clipped x̂₀: ``use_clipped_model_output=True`` matches that;
- it always steps from t to t − T // steps, which is the project's respaced gap only when the gaps
  are uniform (``spaced_timesteps`` keeps t = T − 1, so they rarely are). So the scheduler is set up
  on the *respaced* process itself: its K "training" timesteps are the K kept ones, ᾱ at index k is
  ᾱ of the k-th kept timestep, and it steps k → k − 1; the model sees the original timestep.
  diffusers would recompute ᾱ from float32 betas, in which the cosine schedule's last respaced β
  rounds to 1 (ᾱ_T = 0); ᾱ is therefore handed over in float64, as the project computes it.
"""

import numpy as np
import pytest
import torch

from conftest import tiny_params
from ddpm_study import training
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import GaussianDiffusion
from pipeline import lineage


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny U-Net trained for 40 steps on Fashion-MNIST-sized random images (EMA weights, eval mode)."""
    p = tiny_params()
    p["train"].update(steps=40, log_every=10, checkpoint_every=40, ema_decay=0.9)
    cfg = StudyConfig.from_dict(p)
    images = torch.randint(0, 256, (128, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    result = training.train(schedule="linear", diffusion=GaussianDiffusion(cfg.betas("linear")), images=images,
                            model_cfg=cfg.model, train_cfg=cfg.train, seed=0, lineage=lineage.training(cfg, "linear"),
                            device=torch.device("cpu"), checkpoint_path=tmp_path_factory.mktemp("m") / "c.pt")
    return cfg, training.load_ema_model(result.state, torch.device("cpu"))


def diffusers_ddim(model, spaced: GaussianDiffusion, x_T, noises, eta, clipped_eps=True):
    from diffusers import DDIMScheduler

    K = spaced.num_timesteps
    scheduler = DDIMScheduler(num_train_timesteps=K, trained_betas=spaced.betas_np.astype(np.float32),
                              clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=True, steps_offset=0,
                              prediction_type="epsilon", timestep_spacing="leading")
    scheduler.alphas_cumprod = torch.from_numpy(spaced.alphas_cumprod_np)  # float64, see the module docstring
    scheduler.set_timesteps(K)
    assert scheduler.timesteps.tolist() == list(range(K - 1, -1, -1))
    x = x_T
    with torch.no_grad():
        for k, noise in zip(scheduler.timesteps, noises):
            eps = model(x, spaced.timestep_map[k].repeat(len(x)))
            x = scheduler.step(eps, int(k), x, eta=eta, use_clipped_model_output=clipped_eps,
                               variance_noise=noise).prev_sample
    return x


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [10, 20])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_matches_diffusers(trained, schedule, steps, eta):
    cfg, model = trained
    spaced = GaussianDiffusion(cfg.betas(schedule)).respace(steps)
    gaps = np.diff(spaced.timestep_map.numpy())
    x_T = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours, _ = spaced.sample_loop(model, x_T, torch.Generator().manual_seed(2), sampler="ddim", eta=eta)
    gen = torch.Generator().manual_seed(2)  # the same per-step draws sample_loop makes
    noises = [torch.randn(x_T.shape, generator=gen) for _ in range(steps)]
    theirs = diffusers_ddim(model, spaced, x_T, noises, eta)
    assert (ours - theirs).abs().max() < 1e-3  # float32 round-off; a pixel level is 2/255 = 8e-3
    assert ours.abs().max() <= 1 and ours.std() > 0.05  # real images in range, not a constant
    if steps == 20:
        assert len(set(gaps)) > 1  # non-uniform gaps: the case diffusers' default stepping gets wrong


def test_diffusers_default_raw_eps_is_another_sampler(trained):
    """With diffusers' default (raw ε kept after clipping) the samples differ: the option matters."""
    cfg, model = trained
    spaced = GaussianDiffusion(cfg.betas("linear")).respace(10)
    x_T = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours, _ = spaced.sample_loop(model, x_T, torch.Generator().manual_seed(2), sampler="ddim", eta=0.0)
    raw = diffusers_ddim(model, spaced, x_T, [None] * 10, 0.0, clipped_eps=False)
    assert (ours - raw).abs().max() > 0.1
