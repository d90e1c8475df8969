"""The promise every paired comparison rests on: the initial and per-step noise of a sample batch
depend only on (seed, batch index) — never on the schedule, the sampler's coefficients, or how
many images are drawn in all."""

import numpy as np
import torch

from ddpm_study import sampling
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.schedules import SCHEDULES, get_betas


class Recording(GaussianDiffusion):
    """A diffusion that records the noise each ancestral step receives."""

    def __init__(self, diffusion: GaussianDiffusion):
        super().__init__(diffusion.betas_np, diffusion.timestep_map.numpy())
        self.noises: list[torch.Tensor] = []

    def p_sample(self, model, x_t, t, noise):
        self.noises.append(noise.clone())
        return super().p_sample(model, x_t, t, noise)


def draw(name: str, num_images: int, seed: int = 0):
    """x_T of every batch (what the model sees first) and the step noises of a 5-step DDPM run."""
    diffusion = Recording(GaussianDiffusion(get_betas(name, 1000, **SCHEDULES[name].defaults())).respace(5))
    seen = []

    def model(x, t):
        if t[0] == 999:
            seen.append(x.clone())
        return torch.zeros_like(x)

    sampling.generate(model, diffusion, num_images=num_images, batch_size=3, image_shape=(1, 4, 4), seed=seed,
                      device=torch.device("cpu"), sampler="ddpm", eta=0.0, trajectory_images=1, trajectory_frames=2)
    return seen, diffusion.noises


def test_noise_depends_only_on_seed_and_batch():
    x_T, noises = draw("linear", 6)
    assert len(x_T) == 2 and len(noises) == 2 * 5  # two batches of 3, five steps each
    for name in ("quadratic", "sigmoid", "cosine"):  # every other schedule: the very same noise
        other_x_T, other_noises = draw(name, 6)
        assert all(torch.equal(a, b) for a, b in zip(x_T + noises, other_x_T + other_noises)), name
    first_only, first_noises = draw("cosine", 3)  # fewer images in all: batch 0 unchanged
    assert torch.equal(first_only[0], x_T[0]) and all(torch.equal(a, b) for a, b in zip(first_noises, noises[:5]))
    assert not torch.equal(x_T[0], x_T[1])  # batches differ from each other
    other_seed, _ = draw("linear", 6, seed=1)
    assert not torch.equal(other_seed[0], x_T[0])
    # Each draw is standard normal noise, not a constant or a rescaled copy.
    pooled = torch.cat([n.flatten() for n in noises])
    assert abs(pooled.mean().item()) < 0.2 and 0.8 < pooled.std().item() < 1.2 and np.unique(pooled.numpy()).size == pooled.numel()
