"""Bits per dimension: the variational bound of a DDPM on images, term by term (Ho et al. 2020, eq. 5).

    L = L_T + sum_{t=2}^{T} L_{t-1} + L_0, with
    L_T     = KL(q(x_T | x_0) || N(0, I))                           the prior term (no parameters)
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))     two Gaussians: the posterior and the model's step
    L_0     = -log p_theta(x_0 | x_1)                                 a discretised Gaussian over the 256 pixel bins

as improved-diffusion computes them (``gaussian_diffusion._vb_terms_bpd``, ``calc_bpd_loop``; Nichol & Dhariwal
2021): x_t drawn once per term from q(x_t | x_0), the model's step the sampler's own (``p_mean_variance``: x0
clipped to [-1, 1], the fixed posterior variance beta~_t, "fixed small"), every term in bits per dimension (nats
/ ln 2, averaged over the pixels), the decoder's bins of width 2/255 on data scaled to [-1, 1] with the outer
bins open to +-inf. The standard normal CDF is the exact one (improved-diffusion uses a tanh approximation;
the two differ by < 1e-3 of the CDF). The sum runs over every timestep of the trained process (T model calls
per image), so it is exact for those images, not an estimate over t: ``bits_per_dim``. ``stratified_bits_per_dim``
estimates the same sum without bias from the first few terms exactly and one t per stratum of the rest (the
`likelihood` stage's; the tests check the two agree within the estimate's spread).
"""

from __future__ import annotations

import math

import torch

from .diffusion import GaussianDiffusion, Model

BIN_HALF_WIDTH = 1.0 / 255.0  # data in [-1, 1] from 8-bit pixels: bins of width 2/255


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) per element for x on the 256 levels of [-1, 1]: the mass of N(mean, e^(2 log_scale)) on x's bin,
    the first and last bins extended to -inf and +inf."""
    inv = torch.exp(-log_scale)
    upper = torch.where(x > 1 - 1e-3, torch.ones_like(x), _cdf(inv * (x - mean + BIN_HALF_WIDTH)))
    lower = torch.where(x < -1 + 1e-3, torch.zeros_like(x), _cdf(inv * (x - mean - BIN_HALF_WIDTH)))
    return torch.log((upper - lower).clamp(min=1e-12))


def _per_image_bits(nats: torch.Tensor) -> torch.Tensor:
    """Per-element nats [B, ...] -> bits per dimension per image [B]."""
    return nats.flatten(1).mean(1) / math.log(2.0)


def prior_bpd(diffusion: GaussianDiffusion, x0: torch.Tensor) -> torch.Tensor:
    """L_T in bits/dim per image: KL(q(x_T | x_0) || N(0, I))."""
    t = torch.full((len(x0),), diffusion.num_timesteps - 1, dtype=torch.long, device=x0.device)
    mean = diffusion._extract("sqrt_alphas_cumprod", t, x0.shape) * x0
    logvar = torch.log(diffusion._extract("sqrt_one_minus_alphas_cumprod", t, x0.shape) ** 2)
    return _per_image_bits(normal_kl(mean, logvar, torch.zeros_like(mean), torch.zeros_like(mean)))


@torch.no_grad()
def vb_term_bpd(diffusion: GaussianDiffusion, model: Model, x0: torch.Tensor, t: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
    """L_{t-1} (t > 0: the Gaussian KL) or L_0 (t = 0: the decoder's negative log-likelihood), bits/dim per image,
    at x_t = q_sample(x0, t, noise)."""
    x_t = diffusion.q_sample(x0, t, noise)
    true_mean, _, true_logvar = diffusion.q_posterior_mean_variance(x0, x_t, t)
    out = diffusion.p_mean_variance(model, x_t, t)
    kl = _per_image_bits(normal_kl(true_mean, true_logvar, out["mean"], out["log_variance"]))
    decoder = -_per_image_bits(discretized_gaussian_log_likelihood(x0, out["mean"], 0.5 * out["log_variance"]))
    return torch.where(t == 0, decoder, kl)


@torch.no_grad()
def bits_per_dim(diffusion: GaussianDiffusion, model: Model, x0: torch.Tensor,
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The full bound of every image in ``x0`` [B, C, H, W] (in [-1, 1]): {"total": [B], "prior": [B],
    "terms": [T, B] (row t: L_{t-1}, row 0: L_0)}, one fresh noise draw per term from ``generator``."""
    T = diffusion.num_timesteps
    terms = torch.empty(T, len(x0), dtype=torch.float64)
    for t_int in range(T - 1, -1, -1):
        t = torch.full((len(x0),), t_int, dtype=torch.long, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        terms[t_int] = vb_term_bpd(diffusion, model, x0, t, noise).double().cpu()
    prior = prior_bpd(diffusion, x0).double().cpu()
    return {"total": terms.sum(0) + prior, "prior": prior, "terms": terms}


def strata(num_timesteps: int, count: int, start: int = 0) -> list[range]:
    """``count`` contiguous strata of [start, T) of (nearly) equal size."""
    if not 0 <= start < num_timesteps:
        raise ValueError(f"expected 0 <= start < T = {num_timesteps}, got {start}")
    if not 1 <= count <= num_timesteps - start:
        raise ValueError(f"expected 1 <= strata <= T - start = {num_timesteps - start}, got {count}")
    edges = [start + round(i * (num_timesteps - start) / count) for i in range(count + 1)]
    return [range(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]


@torch.no_grad()
def stratified_bits_per_dim(diffusion: GaussianDiffusion, model: Model, x0: torch.Tensor, count: int,
                            generator: torch.Generator, exact: int = 0) -> dict[str, torch.Tensor]:
    """An unbiased estimate of ``bits_per_dim``'s total for every image in ``x0``, at ``exact + count`` model calls
    per image instead of T: the exact prior, the first ``exact`` terms (L_0 ... L_{exact-1}, t < exact) one call each,
    and per image one t drawn uniformly in each of ``count`` strata of [exact, T) (``strata``), its term weighted by
    the stratum's size (stratified sampling: E[size x L_t] over the stratum is the stratum's sum). The terms at
    small t (the decoder L_0 above all) are the bound's largest and least alike, so summing them exactly removes
    most of the estimate's variance. {"total": [B], "prior": [B]}; ``generator`` (CPU) draws every t and noise, so
    two models given generators in one state see the same t and x_t (paired)."""
    total = prior_bpd(diffusion, x0).double().cpu()
    prior = total.clone()
    for t_int in range(exact):
        t = torch.full((len(x0),), t_int, dtype=torch.long)
        noise = torch.randn(x0.shape, generator=generator)
        total += vb_term_bpd(diffusion, model, x0, t.to(x0.device), noise.to(x0.device)).double().cpu()
    for stratum in strata(diffusion.num_timesteps, count, exact):
        t = stratum.start + torch.randint(len(stratum), (len(x0),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        total += len(stratum) * vb_term_bpd(diffusion, model, x0, t.to(x0.device), noise.to(x0.device)).double().cpu()
    return {"total": total, "prior": prior}
