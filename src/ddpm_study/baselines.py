"""Trivially bad generators: the FID ceiling a reader places the schedules' scores against.

Their FIDs, beside the real-vs-real floor at the same N, bracket what a score means: a model near
the ceiling has learnt nothing useful, one near the floor is as close as this N can tell.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import to_uint8


def gaussian_noise(num_images: int, image_shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """uint8 images of N(0, I) pixels in model range [-1, 1]: what x_T looks like, i.e. an untrained sampler."""
    gen = torch.Generator().manual_seed(seed)
    return to_uint8(torch.randn((num_images, *image_shape), generator=gen))


def mean_image(train_images_uint8: np.ndarray, num_images: int) -> torch.Tensor:
    """The data set's mean image repeated ``num_images`` times: right on average, no diversity at all."""
    mean = torch.from_numpy(train_images_uint8).double().mean(0).round().to(torch.uint8)
    return mean.expand(num_images, *mean.shape).contiguous()
