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

    def model_calls(self, steps: int) -> int:
        """Network evaluations of one full reverse pass over ``steps`` steps (the cost axis: NFE)."""
        return self.calls_per_step * steps - (1 if self.saves_last_call else 0)


REGISTRY: dict[str, Sampler] = {}


def register(name: str, description: str, *, calls_per_step: int = 1, saves_last_call: bool = False,
             stochastic: bool = False) -> Callable[[Callable[..., Step]], Callable[..., Step]]:
    def add(build: Callable[..., Step]) -> Callable[..., Step]:
        if name in REGISTRY:
            raise ValueError(f"sampler {name!r} is registered twice")
        REGISTRY[name] = Sampler(name, description, build, calls_per_step, saves_last_call, stochastic)
        return build

    return add


@register("ddpm", "ancestral sampling (Ho et al. 2020, alg. 2) on the respaced steps", stochastic=True)
def ddpm(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    return lambda x, i, t, noise: diffusion.p_sample(model, x, t, noise)["sample"]


@register("ddim", "DDIM (Song et al. 2021, eq. 12) with eta; eta = 0 is deterministic")
def ddim(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    return lambda x, i, t, noise: diffusion.ddim_sample(model, x, t, noise, eta)["sample"]


@register("sde", "Euler-Maruyama on the reverse VP-SDE (Song et al. 2021b, eq. 6)", stochastic=True)
def sde(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    return lambda x, i, t, noise: diffusion.sde_sample(model, x, t, noise)["sample"]


@register("ode", "Heun on the probability-flow ODE (Karras et al. 2022, alg. 1)", calls_per_step=2, saves_last_call=True)
def ode(diffusion: GaussianDiffusion, model: Model, eta: float = 0.0) -> Step:
    return lambda x, i, t, noise: diffusion.ode_sample(model, x, t, noise, i)["sample"]


SAMPLERS = tuple(REGISTRY)


def get(name: str) -> Sampler:
    if name not in REGISTRY:
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return REGISTRY[name]


def model_calls(sampler: str, steps: int) -> int:
    return get(sampler).model_calls(steps)


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
