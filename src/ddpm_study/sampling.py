"""Sampling from a trained model and the pictures a schedule study shows.

Initial noise and per-step noise depend only on (seed, batch index), never on the schedule, so
the four schedules denoise *the same* x_T and their grids compare side by side. A class-conditional
model samples the classes in turn (image i has class i mod K) under classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torchvision.utils as vutils
from PIL import Image

from .data import to_model_range, to_uint8
from .diffusion import GaussianDiffusion, Model
from .samplers import sample_loop
from .errors import NonFiniteSamples
from .files import atomic_path
from .runtime import derived_seed


@dataclass(frozen=True)
class Samples:
    images: torch.Tensor  # uint8 [N, C, H, W]
    trajectory: torch.Tensor  # uint8 [frames, G, C, H, W]: x_t of the first G images, from x_T to x_0


def guided(model: torch.nn.Module, y: Optional[torch.Tensor], w: float) -> Model:
    """eps for sampling class ``y`` [B] with classifier-free guidance weight ``w`` (Ho & Salimans 2021, eq. 6).

    eps~(x, t) = (1 + w) eps(x, t, y) - w eps(x, t, null). One convention covers the three uses:
    w = 0 samples the conditional model, w > 0 guides (Ho & Salimans report FID best near w = 0.3 on
    ImageNet 64, sharper but less diverse samples beyond), and w = -1 is the *unconditional* model
    (the null class), which the same network learned through ``train.cond_drop_prob``. Conditional
    and unconditional passes run as one batch. ``y`` None: an unconditional model, used as is.
    """
    if y is None:
        return model
    if w == -1:
        return lambda x, t: model(x, t, None)
    if w == 0:
        return lambda x, t: model(x, t, y)
    null = torch.full_like(y, model.null_class)

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cond, uncond = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
        return (1 + w) * cond - w * uncond

    return eps


def class_labels(num_images: int, num_classes: int) -> Optional[torch.Tensor]:
    """Balanced labels, image i of class i mod ``num_classes``; None for an unconditional model (0)."""
    return torch.arange(num_images) % num_classes if num_classes else None


def batch_generator(seed: int, batch: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derived_seed(seed, batch))


@torch.no_grad()
def generate(
    model: Model,
    diffusion: GaussianDiffusion,
    *,
    num_images: int,
    batch_size: int,
    image_shape: tuple[int, int, int],
    seed: int,
    device: torch.device,
    sampler: str,
    eta: float,
    trajectory_images: int,
    trajectory_frames: int,
    labels: Optional[torch.Tensor] = None,
    guidance: float = 0.0,
    on_step: Callable[[int], None] = lambda n: None,
) -> Samples:
    """``num_images`` samples in batches; the first batch also records a trajectory of ``trajectory_frames`` states.

    ``labels`` [num_images]: the classes to sample from a conditional model, with guidance weight
    ``guidance`` (``guided``); None for an unconditional one.
    """
    images, trajectory = [], None
    record_every = max(1, diffusion.num_timesteps // (trajectory_frames - 1))
    for b, start in enumerate(range(0, num_images, batch_size)):
        n = min(batch_size, num_images - start)
        gen = batch_generator(seed, b, device)
        x_T = torch.randn((n, *image_shape), generator=gen, device=device)
        y = None if labels is None else labels[start : start + n].to(device)
        x0, frames = sample_loop(
            diffusion, guided(model, y, guidance), x_T, gen, sampler=sampler, eta=eta, record_every=record_every if b == 0 else 0, on_step=on_step
        )
        if not torch.isfinite(x0).all():  # NaNs would silently become pixels and poison FID
            raise NonFiniteSamples(f"sampling produced non-finite values in batch {b}; the model is unusable")
        images.append(to_uint8(x0).cpu())
        if b == 0:
            trajectory = torch.stack([to_uint8(f[:trajectory_images]) for f in frames])
    return Samples(images=torch.cat(images), trajectory=trajectory)


def class_grid(model: torch.nn.Module, diffusion: GaussianDiffusion, *, per_class: int, image_shape: tuple[int, int, int],
               seed: int, device: torch.device, sampler: str, eta: float, guidance: float) -> torch.Tensor:
    """``per_class`` samples of every class, uint8 [K * per_class, C, H, W], class by class.

    Every class starts from the same x_T and draws the same per-step noise (one seed), so a column of
    the grid is one noise sample rendered as each class.
    """
    rows = []
    for c in range(model.num_classes):
        labels = torch.full((per_class,), c, dtype=torch.long)
        rows.append(generate(model, diffusion, num_images=per_class, batch_size=per_class, image_shape=image_shape,
                             seed=seed, device=device, sampler=sampler, eta=eta, trajectory_images=1,
                             trajectory_frames=2, labels=labels, guidance=guidance).images)
    return torch.cat(rows)


def save_grid(images_uint8: torch.Tensor, path: Path, nrow: int | None = None) -> None:
    """A PNG grid of uint8 images [N, C, H, W] (torchvision's make_grid), written atomically."""
    nrow = nrow or max(1, round(len(images_uint8) ** 0.5))
    grid = vutils.make_grid(images_uint8, nrow=nrow, padding=2, pad_value=255)
    with atomic_path(path) as tmp:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format="PNG")


def save_gif(trajectory_uint8: torch.Tensor, path: Path, duration_ms: int = 80, hold_last_ms: int = 1500) -> None:
    """An animated GIF of a trajectory [frames, G, C, H, W], one grid per frame, the last one held."""
    nrow = max(1, round(trajectory_uint8.shape[1] ** 0.5))
    frames = [
        Image.fromarray(vutils.make_grid(f, nrow=nrow, padding=2, pad_value=255).permute(1, 2, 0).numpy())
        for f in trajectory_uint8
    ]
    durations = [duration_ms] * (len(frames) - 1) + [hold_last_ms]
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)


def forward_strip(diffusion: GaussianDiffusion, images_uint8: torch.Tensor, columns: int, seed: int) -> torch.Tensor:
    """q(x_t | x_0) at ``columns`` evenly spaced t (t = 0 first, t = T - 1 last) for each image: uint8 [rows * columns, C, H, W]."""
    x0 = to_model_range(images_uint8)
    ts = torch.linspace(0, diffusion.num_timesteps - 1, columns).round().long()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    rows = [to_uint8(diffusion.q_sample(x0, torch.full((len(x0),), int(t)), eps)) for t in ts]
    return torch.stack(rows, dim=1).flatten(0, 1)
