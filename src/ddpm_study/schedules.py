"""Beta schedules: pure float64 functions behind a name registry.

Every schedule maps ``T`` (the number of diffusion steps) and its own parameters to a float64
array ``betas`` of shape ``[T]``, with ``betas[t-1]`` the variance added at step ``t``.

Endpoint convention (pinned by tests): the ``beta_start``/``beta_end`` parameters of the linear,
quadratic and sigmoid schedules are the values of Ho et al. (2020) *at T = 1000*. For any other
``T`` they are multiplied by ``1000 / T`` — as improved-diffusion does and unlike the diffusers
library — so that every schedule still ends close to pure noise (alphas_cumprod[-1] ~ 0) whatever
``T`` is. The cosine schedule (Nichol & Dhariwal 2021) is defined on ``t / T`` and needs no
rescaling.

Names are part of the study's record (params, file paths, MLflow run names, report tables):
schedules may be added to the registry, never renamed or changed once committed.

**Adding a schedule** is one function here, decorated with ``@register(name, **params)`` where each
parameter is a ``Param`` (its default and valid range), plus one entry under ``schedules:`` in
``params.yaml``. The configuration validates the entry against the spec, the pipeline trains and
reports it like the others, and the figures give it the next colour of the default palette.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import numpy as np

REFERENCE_T = 1000


def _rescale(beta_start: float, beta_end: float, T: int) -> tuple[float, float]:
    scale = REFERENCE_T / T
    return beta_start * scale, beta_end * scale


@dataclass(frozen=True)
class Param:
    """One schedule parameter: its default (what ``params.yaml`` ships) and its valid range.

    ``low``/``high`` bound an open interval (None: unbounded); ``above`` names another parameter of
    the same schedule that this one must exceed (``beta_end`` above ``beta_start``).
    """

    default: float
    low: Optional[float] = None
    high: Optional[float] = None
    above: Optional[str] = None

    def allows(self, value: float, params: Mapping[str, float]) -> bool:
        return ((self.low is None or value > self.low) and (self.high is None or value < self.high)
                and (self.above is None or value > params[self.above]))

    def describe(self, params: Mapping[str, float]) -> str:
        """What a valid value is, as the error message says it."""
        if self.low is not None and self.high is not None:
            text = f"a number in ({self.low:g}, {self.high:g})"
        elif self.low is not None:
            text = f"a number > {self.low:g}"
        elif self.high is not None:
            text = f"a number < {self.high:g}"
        else:
            text = "a number"
        if self.above is not None:
            text += f" greater than {self.above} ({params[self.above]})"
        return text


@dataclass(frozen=True)
class Schedule:
    """A registered schedule: ``betas(T, **params)`` and the spec of its parameters, in order."""

    name: str
    betas: Callable[..., np.ndarray]
    params: Mapping[str, Param]

    def defaults(self) -> dict[str, float]:
        return {key: p.default for key, p in self.params.items()}


SCHEDULES: dict[str, Schedule] = {}


def register(name: str, **params: Param) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Add ``betas(T, **params)`` to the registry under ``name`` (decorator)."""

    def add(betas: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        if name in SCHEDULES:
            raise ValueError(f"schedule {name!r} is already registered")
        SCHEDULES[name] = Schedule(name, betas, dict(params))
        return betas

    return add


# Ho et al.'s endpoints at T = 1000; both in (0, 1), the end above the start.
_BETA_START = Param(1e-4, 0.0, 1.0)
_BETA_END = Param(0.02, 0.0, 1.0, above="beta_start")


@register("linear", beta_start=_BETA_START, beta_end=_BETA_END)
def linear_betas(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    """Ho et al. (2020): betas evenly spaced from beta_start to beta_end."""
    start, end = _rescale(beta_start, beta_end, T)
    return np.linspace(start, end, T, dtype=np.float64)


@register("quadratic", beta_start=_BETA_START, beta_end=_BETA_END)
def quadratic_betas(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    """betas = linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2."""
    start, end = _rescale(beta_start, beta_end, T)
    return np.linspace(math.sqrt(start), math.sqrt(end), T, dtype=np.float64) ** 2


@register("sigmoid", beta_start=_BETA_START, beta_end=_BETA_END, sigmoid_range=Param(6.0, 0.0))
def sigmoid_betas(T: int, beta_start: float, beta_end: float, sigmoid_range: float) -> np.ndarray:
    """betas = sigmoid(linspace(-range, range, T)) * (beta_end - beta_start) + beta_start."""
    start, end = _rescale(beta_start, beta_end, T)
    x = np.linspace(-sigmoid_range, sigmoid_range, T, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-x)) * (end - start) + start


def cosine_alphas_cumprod(t: np.ndarray, T: int, s: float) -> np.ndarray:
    """Nichol & Dhariwal (2021), eq. 17, normalised so that alpha_bar(0) = 1: f(t) / f(0)."""

    def f(u: np.ndarray) -> np.ndarray:
        return np.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

    return f(np.asarray(t, dtype=np.float64)) / f(np.zeros(1))


@register("cosine", s=Param(0.008, 0.0), max_beta=Param(0.999, 0.0, 1.0))
def cosine_betas(T: int, s: float, max_beta: float) -> np.ndarray:
    """betas_t = 1 - alpha_bar(t) / alpha_bar(t - 1), clipped at max_beta to avoid the singularity at t = T."""
    t = np.arange(T + 1, dtype=np.float64)
    alpha_bar = cosine_alphas_cumprod(t, T, s)
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


def get_betas(name: str, T: int, **params: float) -> np.ndarray:
    """The float64 ``[T]`` betas of schedule ``name`` with its parameters ``params``."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    betas = SCHEDULES[name].betas(T, **params)
    if not (np.all(betas > 0) and np.all(betas < 1)):
        raise ValueError(f"schedule {name!r} with T={T} and {params} gives betas outside (0, 1)")
    return betas


def log_snr(alphas_cumprod: np.ndarray) -> np.ndarray:
    """log SNR(t) = log(alpha_bar_t / (1 - alpha_bar_t))."""
    return np.log(alphas_cumprod) - np.log1p(-alphas_cumprod)


def summarize(betas: np.ndarray) -> dict[str, float]:
    """The numbers a schedule study records for a schedule: alpha_bar_T and the log-SNR range."""
    alphas_cumprod = np.cumprod(1.0 - betas)
    snr = log_snr(alphas_cumprod)
    return {
        "alpha_bar_T": float(alphas_cumprod[-1]),
        "log_snr_max": float(snr[0]),
        "log_snr_min": float(snr[-1]),
    }
