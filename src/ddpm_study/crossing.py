"""Training schedule and sampling schedule, separated: a model trained with schedule A, sampled on
the noise levels of schedule B (Karras et al. 2022 treat the two as separate choices).

The sampler runs B's respaced process (its ᾱ values set every coefficient of the step); the network,
which only knows A's timesteps, is told the real-valued timestep of A at which A's ᾱ equals B's
(``matched_timesteps``: linear interpolation of log ᾱ_A over integer t — log ᾱ is smooth in t for
all four schedules, ᾱ itself spans nine decades). The U-Net's sinusoidal time embedding takes real t.
Where B's noise level lies outside A's trained range [ᾱ_A(T − 1), ᾱ_A(0)] the timestep is clamped to
that end and flagged: the network is then asked about a noise level it never saw.

Kept apart from ``diffusion.py`` on purpose: that module is part of the training code fingerprint.
"""

from __future__ import annotations

import numpy as np
import torch

from .diffusion import GaussianDiffusion, Model

ROUND_OFF = 1e-9  # in log ᾱ


def matched_timesteps(alphas_cumprod_a: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real timesteps t of A with ᾱ_A(t) = ``targets`` (log-linear between integer t), and which were clamped."""
    log_a = np.log(np.asarray(alphas_cumprod_a, dtype=np.float64))  # strictly decreasing in t
    log_target = np.log(np.asarray(targets, dtype=np.float64))
    t = np.interp(-log_target, -log_a, np.arange(len(log_a), dtype=np.float64))  # clamps outside the range
    # Beyond round-off only: a respaced process recomputes ᾱ through its betas (last digits move).
    clamped = (log_target > log_a[0] + ROUND_OFF) | (log_target < log_a[-1] - ROUND_OFF)
    return t, clamped


def crossed(model: Model, trained_with: GaussianDiffusion, sampled_on: GaussianDiffusion) -> tuple[Model, GaussianDiffusion, np.ndarray, np.ndarray]:
    """A model of ``trained_with`` (its full T-step process) as a sampler of ``sampled_on`` (respaced).

    Returns the wrapped model, the diffusion to run its ``sample_loop`` on, the matched real timesteps
    and the clamped mask, one entry per step of ``sampled_on``.
    """
    t_real, clamped = matched_timesteps(trained_with.alphas_cumprod_np, sampled_on.alphas_cumprod_np)
    # index k -> step k of B; the model gets t_real[k] and its output is read as it was trained to predict
    process = GaussianDiffusion(sampled_on.betas_np, prediction=trained_with.prediction)
    table = torch.from_numpy(t_real).float()
    on_device: dict[torch.device, torch.Tensor] = {}  # one copy per device, not one per step

    def wrapped(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if x.device not in on_device:
            on_device[x.device] = table.to(x.device)
        return model(x, on_device[x.device][k])

    return wrapped, process, t_real, clamped
