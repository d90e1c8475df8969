"""Gaussian diffusion maths (Ho et al. 2020; DDIM, Song et al. 2021; the SDE view, Song et al. 2021b), paper notation.

Timesteps are 0-based indices: ``t = 0`` is the paper's step 1 and ``t = T - 1`` its step T.
Coefficients are computed once in float64 with numpy and gathered per batch with ``_extract``.

A diffusion may run on a subsequence of the training timesteps ("respacing", Nichol & Dhariwal
2021, sec. 4): ``respace(steps)`` returns a diffusion whose betas are recomputed from the
alphas_cumprod kept at those timesteps and whose ``timestep_map`` tells the model which training
timestep each index stands for.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# The reverse samplers ``sample_loop`` runs: "ddpm" is ancestral sampling (``p_sample``), "ddim"
# is ``ddim_sample`` with its eta, "sde" Euler-Maruyama on the reverse VP-SDE (``sde_sample``),
# "ode" Heun on the probability-flow ODE (``ode_sample``). A new sampler is a step method plus a name here.
SAMPLERS = ("ddpm", "ddim", "sde", "ode")


def _extract(arr: torch.Tensor, t: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
    """Gather ``arr[t]`` for a batch of indices ``t`` [B] and broadcast to ``x_shape`` [B, ...]."""
    out = arr.to(t.device)[t].float()
    return out.reshape(t.shape[0], *([1] * (len(x_shape) - 1)))


def spaced_timesteps(T: int, steps: int) -> np.ndarray:
    """``steps`` training timesteps evenly spread over [0, T - 1], always keeping t = T - 1.

    Keeping the noisiest step means every sampler starts from (nearly) pure noise, whatever the
    number of steps; ``steps == T`` gives every timestep.
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    if steps == 1:
        return np.array([T - 1])
    return np.round(np.linspace(0, T - 1, steps)).astype(np.int64)


class GaussianDiffusion:
    """Forward process, training loss and reverse samplers for a fixed ``betas`` [T] (float64)."""

    def __init__(self, betas: np.ndarray, timestep_map: Optional[np.ndarray] = None):
        betas = np.asarray(betas, dtype=np.float64)
        assert betas.ndim == 1 and np.all(betas > 0) and np.all(betas <= 1)
        self.num_timesteps = len(betas)
        self.betas_np = betas
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
        self.alphas_cumprod_np = alphas_cumprod

        # Posterior q(x_{t-1} | x_t, x_0) = N(mean, variance), Ho et al. eq. 6-7.
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        consts = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas_cumprod),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod - 1),
            "posterior_variance": posterior_variance,
            # The variance is 0 at t = 0 (no noise is added there); clip its log to the next value,
            # as improved-diffusion does, or to beta_1 for a one-step process.
            "posterior_log_variance_clipped": np.log(
                np.append(posterior_variance[1] if len(betas) > 1 else betas[0], posterior_variance[1:])
            ),
            "posterior_mean_coef1": betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
            "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod),
        }
        for name, value in consts.items():
            setattr(self, name, torch.from_numpy(value))
        self.timestep_map = torch.from_numpy(
            np.arange(self.num_timesteps) if timestep_map is None else np.asarray(timestep_map, dtype=np.int64)
        )

    def respace(self, steps: int) -> "GaussianDiffusion":
        """The same process on ``steps`` timesteps (``spaced_timesteps``), with betas recomputed."""
        keep = spaced_timesteps(self.num_timesteps, steps)
        alphas_cumprod = self.alphas_cumprod_np[keep]
        betas = 1.0 - alphas_cumprod / np.append(1.0, alphas_cumprod[:-1])
        return GaussianDiffusion(betas, timestep_map=self.timestep_map.numpy()[keep])

    # --- forward process -------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I); shapes [B, C, H, W], t [B]."""
        return (
            _extract(self.sqrt_alphas_cumprod, t, x0.shape) * x0
            + _extract(self.sqrt_one_minus_alphas_cumprod, t, x0.shape) * eps
        )

    def q_posterior_mean_variance(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = _extract(self.posterior_mean_coef1, t, x_t.shape) * x0 + _extract(self.posterior_mean_coef2, t, x_t.shape) * x_t
        return (
            mean,
            _extract(self.posterior_variance, t, x_t.shape),
            _extract(self.posterior_log_variance_clipped, t, x_t.shape),
        )

    def predict_x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return _extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t - _extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape) * eps

    def predict_eps(self, model: Model, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t); the model sees the training timestep that index ``t`` stands for."""
        return model(x_t, self.timestep_map.to(t.device)[t])

    # --- training --------------------------------------------------------------------------
    def training_losses(self, model: Model, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Per-image simple loss of Ho et al.: mean over pixels of (eps - eps_theta(x_t, t))^2, shape [B]."""
        x_t = self.q_sample(x0, t, eps)
        return (eps - self.predict_eps(model, x_t, t)).pow(2).flatten(1).mean(1)

    # --- reverse process -------------------------------------------------------------------
    def p_mean_variance(
        self, model: Model, x_t: torch.Tensor, t: torch.Tensor, clip_denoised: bool = True
    ) -> dict[str, torch.Tensor]:
        """p_theta(x_{t-1} | x_t) with the posterior variance ("fixed small", Ho et al. sec. 3.2)."""
        eps = self.predict_eps(model, x_t, t)
        x0 = self.predict_x0_from_eps(x_t, t, eps)
        if clip_denoised:
            x0 = x0.clamp(-1, 1)
        mean, variance, log_variance = self.q_posterior_mean_variance(x0, x_t, t)
        return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_x0": x0, "eps": eps}

    def p_sample(self, model: Model, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """One ancestral step x_t -> x_{t-1}; no noise is added at t = 0."""
        out = self.p_mean_variance(model, x_t, t)
        nonzero = (t != 0).float().reshape(-1, *([1] * (x_t.dim() - 1)))
        sample = out["mean"] + nonzero * torch.exp(0.5 * out["log_variance"]) * noise
        return {"sample": sample, "pred_x0": out["pred_x0"]}

    def ddim_sample(
        self, model: Model, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, eta: float = 0.0
    ) -> dict[str, torch.Tensor]:
        """One DDIM step (Song et al. 2021, eq. 12); eta = 0 is deterministic, eta = 1 matches DDPM's variance."""
        out = self.p_mean_variance(model, x_t, t)
        # Re-derive eps from the clipped x0 so the step is consistent with it.
        eps = (_extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t - out["pred_x0"]) / _extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t.shape
        )
        alpha_bar = _extract(self.alphas_cumprod, t, x_t.shape)
        alpha_bar_prev = _extract(self.alphas_cumprod_prev, t, x_t.shape)
        sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
        mean = out["pred_x0"] * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
        nonzero = (t != 0).float().reshape(-1, *([1] * (x_t.dim() - 1)))
        return {"sample": mean + nonzero * sigma * noise, "pred_x0": out["pred_x0"]}

    # --- the SDE view (Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021, "Score-based generative
    # modeling through stochastic differential equations"; "Song 2021b" below) ----------------------
    # DDPM is the discretisation of the VP-SDE  dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw  (eq. 11) with
    # beta(t_i) dt = beta_i on this diffusion's (possibly respaced) timesteps. Its score is
    # grad_x log p_t(x) = -eps(x, t) / sqrt(1 - alpha_bar_t), so the noise-prediction net serves both.
    def score(self, model: Model, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """s_theta(x_t, t) = -eps_theta(x_t, t) / sqrt(1 - alpha_bar_t)."""
        return -self.predict_eps(model, x_t, t) / _extract(self.sqrt_one_minus_alphas_cumprod, t, x_t.shape)

    def sde_sample(self, model: Model, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Euler-Maruyama step of the reverse-time VP-SDE (Song 2021b, eq. 6 with eq. 11), t -> t - 1.

        dx = [-1/2 beta(t) x - beta(t) grad log p_t(x)] dt + sqrt(beta(t)) dw_bar, stepped with
        beta(t) dt = beta_t:  x_{t-1} = x_t + beta_t (x_t / 2 + s_theta(x_t, t)) + sqrt(beta_t) z.
        Ancestral sampling with the same score (Song 2021b, eq. 47; Ho et al. eq. 11 with variance
        beta_t) is x_{t-1} = (x_t + beta_t s_theta) / sqrt(1 - beta_t) + sqrt(beta_t) z; as
        1 / sqrt(1 - beta) = 1 + beta / 2 + O(beta^2), the two steps differ by O(beta_t^2): ancestral
        sampling *is* Euler-Maruyama to first order (checked numerically in tests/test_samplers.py).
        As in `p_sample`, the last step (t = 0) adds no noise.
        """
        beta = _extract(self.betas, t, x_t.shape)
        mean = x_t + beta * (0.5 * x_t + self.score(model, x_t, t))
        nonzero = (t != 0).float().reshape(-1, *([1] * (x_t.dim() - 1)))
        return {"sample": mean + nonzero * beta.sqrt() * noise}

    def ode_sample(self, model: Model, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Heun (explicit trapezoidal, 2nd order) step of the probability-flow ODE, t -> t - 1.

        The probability-flow ODE of the VP-SDE, dx = -1/2 beta(t) [x + grad log p_t(x)] dt (Song 2021b,
        eq. 13), written in y = x / sqrt(alpha_bar) and sigma = sqrt((1 - alpha_bar) / alpha_bar), is
        dy/dsigma = eps(x, t) (DDIM paper, eq. 14; Karras et al. 2022, eq. 4 with s = sqrt(alpha_bar)):
        its Euler step is DDIM with eta = 0 (less the x_0 clipping). Heun's method on it is EDM's
        sampler (Karras et al. 2022, alg. 1): an Euler predictor to t - 1, the slope there, the mean of
        the two slopes; two network calls per step. The step to the data (sigma = 0) is a plain Euler
        step, as in EDM, and removes the predicted noise exactly. Deterministic: ``noise`` is unused.
        """
        sigma = _extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape)
        alpha_bar_prev = _extract(self.alphas_cumprod_prev, t, x_t.shape)
        sigma_prev = torch.sqrt(1.0 / alpha_bar_prev - 1.0)
        y = x_t * _extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape)
        d = self.predict_eps(model, x_t, t)
        y_next = y + (sigma_prev - sigma) * d
        if int(t.min()) > 0:  # the whole batch shares t in `sample_loop`
            d_next = self.predict_eps(model, y_next * alpha_bar_prev.sqrt(), t - 1)
            y_next = y + (sigma_prev - sigma) * 0.5 * (d + d_next)
        return {"sample": y_next * alpha_bar_prev.sqrt()}

    def model_calls(self, sampler: str) -> int:
        """Network evaluations of one full reverse pass with ``sampler`` (Heun: 2 per step, 1 on the last)."""
        return 2 * self.num_timesteps - 1 if sampler == "ode" else self.num_timesteps

    @torch.no_grad()
    def sample_loop(
        self,
        model: Model,
        x_T: torch.Tensor,
        generator: torch.Generator,
        sampler: str = "ddpm",
        eta: float = 0.0,
        record_every: int = 0,
        on_step: Optional[Callable[[int], None]] = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the reverse process from ``x_T`` [B, C, H, W] over all of this diffusion's timesteps.

        ``sampler`` is "ddpm" (ancestral, ``p_sample``), "ddim" (``ddim_sample`` with ``eta``), "sde"
        (``sde_sample``) or "ode" (``ode_sample``); every sampler draws the same per-step noise.
        The per-step noise comes from ``generator`` (on the device of ``x_T``), so two runs with
        the same generator state and ``x_T`` draw the same noise. Returns the final samples and,
        if ``record_every`` > 0, the states x_t every ``record_every`` steps plus the final one.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
        x = x_T
        frames = [x.cpu()] if record_every else []
        indices = list(range(self.num_timesteps))[::-1]
        for n, i in enumerate(indices, start=1):
            t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
            noise = torch.randn(x.shape, generator=generator, device=x.device)
            if sampler == "ddpm":
                x = self.p_sample(model, x, t, noise)["sample"]
            elif sampler == "ddim":
                x = self.ddim_sample(model, x, t, noise, eta)["sample"]
            elif sampler == "sde":
                x = self.sde_sample(model, x, t, noise)["sample"]
            else:
                x = self.ode_sample(model, x, t, noise)["sample"]
            if record_every and (n % record_every == 0 or n == len(indices)):
                frames.append(x.cpu())
            if on_step is not None:
                on_step(n)
        return x, frames

