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


class Recorder(torch.nn.Module):
    """A stand-in eps network of a 3-class model: eps = (class + 1) * x, the null class (3) giving 10 * x."""

    num_classes, null_class = 3, 3

    def __init__(self):
        super().__init__()
        self.labels: list[torch.Tensor] = []

    def forward(self, x, t, y=None):
        y = torch.full((len(x),), 3) if y is None else y
        self.labels.append(y.clone())
        scale = torch.where(y == 3, torch.tensor(10.0), (y + 1).float())
        return scale.reshape(-1, 1, 1, 1) * x


def test_guidance_convention_covers_unconditional_conditional_and_guided():
    """(1 + w) eps(x, y) - w eps(x, null): w = -1 is the null class, w = 0 the class, w = 2 extrapolates."""
    net, x, t = Recorder(), torch.ones(2, 1, 2, 2), torch.tensor([5, 5])
    y = torch.tensor([0, 2])
    torch.testing.assert_close(sampling.guided(net, y, -1.0)(x, t), 10 * x)
    torch.testing.assert_close(sampling.guided(net, y, 0.0)(x, t), torch.tensor([1.0, 3.0]).reshape(2, 1, 1, 1) * x)
    guided = sampling.guided(net, y, 2.0)(x, t)
    torch.testing.assert_close(guided, (3 * torch.tensor([1.0, 3.0]) - 2 * 10).reshape(2, 1, 1, 1) * x)
    assert sampling.guided(net, None, 0.0) is net  # an unconditional model is used as is


def test_conditional_samples_cycle_through_the_classes_and_the_class_grid_shares_noise():
    labels = sampling.class_labels(7, 3)
    assert labels.tolist() == [0, 1, 2, 0, 1, 2, 0] and sampling.class_labels(7, 0) is None
    net = Recorder()
    diffusion = GaussianDiffusion(get_betas("linear", 1000, beta_start=1e-4, beta_end=0.02)).respace(3)
    sampling.generate(net, diffusion, num_images=7, batch_size=4, image_shape=(1, 2, 2), seed=0, device=torch.device("cpu"),
                      sampler="ddim", eta=0.0, trajectory_images=1, trajectory_frames=2, labels=labels, guidance=0.0)
    assert torch.cat(net.labels[::3]).tolist() == labels.tolist()  # first step of each batch: the batch's labels
    grid = sampling.class_grid(Recorder(), diffusion, per_class=2, image_shape=(1, 2, 2), seed=0, device=torch.device("cpu"),
                               sampler="ddpm", eta=0.0, guidance=0.0)
    assert grid.shape == (6, 1, 2, 2)
    # Reproducible, and the class changes the row.
    again = sampling.class_grid(Recorder(), diffusion, per_class=2, image_shape=(1, 2, 2), seed=0, device=torch.device("cpu"),
                                sampler="ddpm", eta=0.0, guidance=0.0)
    assert torch.equal(grid, again) and not torch.equal(grid[:2], grid[2:4])
    # A net that ignores the class: every row is then the same, so each row got the same x_T and
    # per-step noise; the columns (different noise) differ.
    blind = sampling.class_grid(ClassBlind(), diffusion, per_class=2, image_shape=(1, 2, 2), seed=0,
                                device=torch.device("cpu"), sampler="ddpm", eta=0.0, guidance=1.0)
    assert all(torch.equal(blind[:2], blind[2 * c: 2 * c + 2]) for c in range(3))
    assert not torch.equal(blind[0], blind[1])


class ClassBlind(torch.nn.Module):
    num_classes, null_class = 3, 3

    def forward(self, x, t, y=None):
        return 0.1 * x
