"""The reverse samplers, as a registry: one registered function per sampler, and the loop that runs them.

A sampler is registered once (``register``) with its name, a one-line description and its network
calls per step; ``SAMPLERS`` lists the names, ``sample_loop`` runs any of them, and the config check,
the CLI and the write-up's tables read this registry (k-diffusion's ``sample_<name>`` functions and
diffusers' one scheduler per file are the models). A registered function builds one reverse pass's
step, ``step(x, i, t, noise) -> x``: ``i`` is the index into the (respaced) diffusion, as a Python int
the host already knows, and ``t`` the same index as a batch tensor on ``x``'s device. A sampler with
state across steps (a multistep solver) keeps it in the closure.

This file is not part of any trained model's lineage (the training code never imports it): adding a
sampler here retrains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .diffusion import GaussianDiffusion, Model

Step = Callable[[torch.Tensor, int, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Sampler:
    name: str
    description: str
    build: Callable[..., Step]  # (diffusion, model, eta) -> step
    calls_per_step: int  # network evaluations per step; Heun-type solvers save one on the last step
    saves_last_call: bool = False
    stochastic: bool = False

    def describe(self, eta: float = 0.0) -> str:
        """The write-ups' sentence for this sampler (``description`` with its eta filled in)."""
        return self.description.format(eta=eta)

    def model_calls(self, steps: int) -> int:
        """Network evaluations of one full reverse pass over ``steps`` steps (the cost axis: NFE)."""
        return self.calls_per_step * steps - (1 if self.saves_last_call else 0)

    def steps_within(self, nfe: int) -> int:
        """The most steps whose pass costs at most ``nfe`` network calls (at least one step): a budget of
        10 NFE is 10 DDPM steps or 5 Heun steps (9 calls)."""
        return max(1, (nfe + (1 if self.saves_last_call else 0)) // self.calls_per_step)


REGISTRY: dict[str, Sampler] = {}


def register(name: str, description: str, *, calls_per_step: int = 1, saves_last_call: bool = False,
             stochastic: bool = False) -> Callable[[Callable[..., Step]], Callable[..., Step]]:
    def add(build: Callable[..., Step]) -> Callable[..., Step]:
        if name in REGISTRY:
            raise ValueError(f"sampler {name!r} is registered twice")
        REGISTRY[name] = Sampler(name, description, build, calls_per_step, saves_last_call, stochastic)
        return build

    return add


@register("ddpm", "DDPM ancestral sampling (posterior variance β̃, x̂₀ clipped to [−1, 1])", stochastic=True)
def ddpm(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    return lambda x, i, t, noise: diffusion.p_sample(model, x, t, noise)["sample"]


@register("ddim", "DDIM with eta = {eta:g}")
def ddim(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    return lambda x, i, t, noise: diffusion.ddim_sample(model, x, t, noise, eta)["sample"]


@register("sde", "SDE: Euler–Maruyama on the reverse-time VP-SDE (Song et al. 2021), one network call per step",
          stochastic=True)
def sde(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    return lambda x, i, t, noise: diffusion.sde_sample(model, x, t, noise)["sample"]


@register("ode", "ODE: Heun's method on the probability-flow ODE, two network calls per step (one on the last)",
          calls_per_step=2, saves_last_call=True)
def ode(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    return lambda x, i, t, noise: diffusion.ode_sample(model, x, t, noise, i)["sample"]


@register("ode_clip", "ODE on the clipped denoiser: Heun's method on the probability-flow ODE with the slope ε that x̂₀ "
          "clipped to [−1, 1] implies, two network calls per step (one on the last)", calls_per_step=2, saves_last_call=True)
def ode_clip(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    """``ode`` on the clipped denoiser: the network is read as x̂₀, clipped to [-1, 1], and handed to the Heun
    step as the eps that clipped x̂₀ implies, eps_c = (x - sqrt(abar) x̂₀_c) / sqrt(1 - abar); in y = x / sqrt(abar)
    the slope is (y - x̂₀_c) / sigma, EDM's denoiser form. Where the clip is idle it is ``ode`` itself; diffusers'
    ``HeunDiscreteScheduler(clip_sample=True)`` is the same method (tests/test_heun_diffusers.py)."""
    # alpha_bar by the training timestep the network is called with (respacing keeps alpha_bar's values).
    timesteps = diffusion.timestep_map.numpy()  # host arrays: built before the loop, copied to the device once
    table = torch.zeros(int(timesteps.max()) + 1, dtype=torch.float64)
    table[torch.from_numpy(timesteps)] = torch.from_numpy(diffusion.alphas_cumprod_np)
    on_device: dict[torch.device, torch.Tensor] = {}

    def clipped(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        if x.device not in on_device:
            on_device[x.device] = table.to(x.device)
        a = on_device[x.device][timestep].float().reshape(-1, *([1] * (x.dim() - 1)))
        out = model(x, timestep)
        x0 = (x - (1 - a).sqrt() * out) / a.sqrt() if diffusion.prediction == "eps" else a.sqrt() * x - (1 - a).sqrt() * out
        return (x - a.sqrt() * x0.clamp(-1, 1)) / (1 - a).sqrt()

    eps_view = GaussianDiffusion(diffusion.betas_np, diffusion.timestep_map.numpy(), prediction="eps")  # reads `clipped` as eps
    return lambda x, i, t, noise: eps_view.ode_sample(clipped, x, t, noise, i)["sample"]


@register("dpmpp2m", "DPM-Solver++(2M) (Lu et al. 2022b): multistep in λ on x̂₀ clipped to [−1, 1], one network call per step")
def dpmpp2m(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    """DPM-Solver++(2M) on the (respaced) timesteps, from index S - 1 down to 0 and then to sigma = 0.

    In alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t), lambda_t = log(alpha_t / sigma_t) and
    the data prediction x0_theta (clipped to [-1, 1], as this project's DDPM and DDIM clip it; diffusers'
    ``thresholding=True, sample_max_value=1.0`` is the same clip), one step s -> t with h = lambda_t - lambda_s:
        first order:  x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x0(s)            (DDIM with eta = 0)
        second order: x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) (D0 + D1 / 2),
                      D0 = x0(s), D1 = (x0(s) - x0(s')) h / h', h' = lambda_s - lambda_s' (s' the step before s)
    The first step has no history and is first order; so is the last, to sigma = 0 (where lambda = inf and the
    update is x0 itself), as diffusers' ``final_sigmas_type="zero"`` makes it at any number of steps. One
    network call per step; deterministic (``noise`` is unused).
    """
    a = diffusion.alphas_cumprod_np
    alpha, sigma = np.sqrt(a), np.sqrt(1.0 - a)
    lam = np.log(alpha) - np.log(sigma)
    previous: dict[str, object] = {}

    def step(x: torch.Tensor, i: int, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x0 = diffusion.predict_eps_x0(model, x, t)[1].clamp(-1, 1)
        if i == 0:  # to sigma = 0: alpha = 1, sigma / sigma_s = 0, e^{-h} = 0
            return x0
        h = lam[i - 1] - lam[i]
        coef_x, coef_d = sigma[i - 1] / sigma[i], -alpha[i - 1] * np.expm1(-h)
        if "x0" in previous:
            r = (lam[i] - lam[previous["i"]]) / h  # h' / h
            d = x0 + 0.5 / r * (x0 - previous["x0"])
        else:
            d = x0
        previous.update(x0=x0, i=i)
        return float(coef_x) * x + float(coef_d) * d

    return step


SAMPLERS = tuple(REGISTRY)


def get(name: str) -> Sampler:
    if name not in REGISTRY:
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return REGISTRY[name]


def model_calls(sampler: str, steps: int) -> int:
    return get(sampler).model_calls(steps)


def steps_within(sampler: str, nfe: int) -> int:
    return get(sampler).steps_within(nfe)


def start_below(diffusion: GaussianDiffusion, sigma_max: float) -> GaussianDiffusion:
    """The process on its timesteps with sigma = sqrt((1 - abar) / abar) <= ``sigma_max`` (0: all of them).

    This is where the reverse pass starts, from x ~ N(0, I) all the same: EDM's sigma_max = 80 (Karras et al.
    2022, generate.py) and DPM-Solver's lambda_min = log(alpha / sigma) >= -5.1 for cosine models (diffusers'
    ``lambda_min_clipped``; sigma_max = e^5.1 = 164) are both this bound. Respace the result to choose steps.
    """
    if not sigma_max:
        return diffusion
    a = diffusion.alphas_cumprod_np
    keep = np.flatnonzero(np.sqrt((1 - a) / a) <= sigma_max)
    if len(keep) == 0:
        raise ValueError(f"sigma_max = {sigma_max:g} is below the smallest sigma of the process "
                         f"({float(np.sqrt((1 - a[0]) / a[0])):.3g}): no timestep is left")
    return diffusion.subsequence(keep)


def reverse_process(diffusion: GaussianDiffusion, steps: int, spacing: str = "linspace",
                    sigma_max: float = 0.0) -> GaussianDiffusion:
    """The respaced process a sampler runs: ``steps`` timesteps by ``spacing`` among those with sigma <= ``sigma_max``."""
    return start_below(diffusion, sigma_max).respace(steps, spacing)


@torch.no_grad()
def sample_loop(
    diffusion: GaussianDiffusion,
    model: Model,
    x_T: torch.Tensor,
    generator: torch.Generator,
    sampler: str = "ddpm",
    eta: float = 0.0,
    record_every: int = 0,
    on_step: Optional[Callable[[int], None]] = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``sampler`` from ``x_T`` [B, C, H, W] over all of ``diffusion``'s (respaced) timesteps.

    Every sampler draws the same per-step noise from ``generator`` (on the device of ``x_T``), used
    or not, so two runs with the same generator state and ``x_T`` see the same noise whatever the
    sampler. Returns the final samples and, if ``record_every`` > 0, the states every
    ``record_every`` steps plus the final one (on the CPU).
    """
    step = get(sampler).build(diffusion, model, eta)
    x = x_T
    frames = [x.cpu()] if record_every else []
    indices = list(range(diffusion.num_timesteps))[::-1]
    for n, i in enumerate(indices, start=1):
        t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        x = step(x, i, t, noise)
        if record_every and (n % record_every == 0 or n == len(indices)):
            frames.append(x.cpu())
        if on_step is not None:
            on_step(n)
    return x, frames
