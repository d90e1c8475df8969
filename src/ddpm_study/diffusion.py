"""Gaussian diffusion maths (Ho et al. 2020; DDIM, Song et al. 2021; the SDE view, Song et al. 2021b), paper notation.

Timesteps are 0-based indices: ``t = 0`` is the paper's step 1 and ``t = T - 1`` its step T.
Coefficients are computed once in float64 with numpy, copied to a device once (``_on``: a cache per
device, so a training or sampling step makes no host-to-device copy) and gathered per batch.

A diffusion may run on a subsequence of the training timesteps ("respacing", Nichol & Dhariwal
2021, sec. 4): ``respace(steps, spacing)`` returns a diffusion whose betas are recomputed from the
alphas_cumprod kept at those timesteps and whose ``timestep_map`` tells the model which training
timestep each index stands for.

The network predicts eps (Ho et al.) or v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0 (Salimans &
Ho 2022, "v-prediction"): ``prediction``. Every sampler reads the model through ``predict_eps_x0``,
which converts either output exactly, so the samplers never see the parameterisation.

The samplers that run the reverse process (their registry, ``sample_loop``) live in ``samplers.py``:
this file is what the training code runs, and a new sampler must not change a trained model's lineage.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# What the network predicts: eps (Ho et al. 2020) or v (Salimans & Ho 2022, app. D).
PREDICTIONS = ("eps", "v")

# How a sampler's steps pick training timesteps (``spaced_timesteps``), e.g. for T = 1000, 10 steps:
SPACINGS = (
    "linspace",   # round(linspace(0, T - 1, S)): 0, 111, ..., 999 (this project's default; keeps t = T - 1)
    "leading",    # (T // S) * arange(S): 0, 100, ..., 900 (DDIM's "uniform", diffusers' "leading")
    "trailing",   # round(arange(T, 0, -T / S)) - 1: 99, 199, ..., 999 (Lin et al. 2024, table 2)
    "quadratic",  # int(linspace(0, sqrt(0.8 T), S) ** 2): 0, 9, 39, ..., 800 (DDIM, app. D.2, CIFAR-10)
    "karras",     # the timesteps nearest to Karras et al.'s (2022, eq. 5) rho = 7 steps in sigma = sqrt((1 - abar) / abar)
)
KARRAS_RHO = 7.0


def karras_timesteps(alphas_cumprod: np.ndarray, steps: int, sigma_max: float | None = None) -> np.ndarray:
    """Increasing training timesteps nearest (in log sigma) to Karras et al.'s schedule
    sigma_i = (sigma_max^(1/rho) + i / (S - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i = 0..S-1,
    from sigma_max (the last timestep's sigma, or ``sigma_max`` if smaller: EDM's 80) down to sigma_min
    (the first timestep's), as diffusers' ``use_karras_sigmas`` maps them (``_sigma_to_t``), rounded."""
    log_sigma = 0.5 * np.log((1 - alphas_cumprod) / alphas_cumprod)  # increasing in t
    lo, hi = np.exp(log_sigma[0]), np.exp(log_sigma[-1])
    hi = min(hi, sigma_max) if sigma_max else hi
    ramp = np.linspace(0, 1, steps)
    sigmas = (hi ** (1 / KARRAS_RHO) + ramp * (lo ** (1 / KARRAS_RHO) - hi ** (1 / KARRAS_RHO))) ** KARRAS_RHO
    t = np.interp(np.log(sigmas), log_sigma, np.arange(len(log_sigma), dtype=np.float64))
    return np.round(t[::-1]).astype(np.int64)


def spaced_timesteps(T: int, steps: int, spacing: str = "linspace", alphas_cumprod: np.ndarray | None = None,
                     sigma_max: float | None = None) -> np.ndarray:
    """``steps`` increasing training timesteps in [0, T - 1] chosen by ``spacing`` (``SPACINGS``).

    "linspace" and "trailing" keep the noisiest step t = T - 1, so every sampler starts from (nearly)
    pure noise whatever the number of steps; "leading" and "quadratic" do not (the flaw Lin et al.
    2024 point out), and are here to measure it. ``steps == T`` gives every timestep for all but
    "quadratic". "karras" needs the process's ``alphas_cumprod`` (and takes an optional ``sigma_max``).
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    if spacing == "linspace":
        keep = np.array([T - 1]) if steps == 1 else np.round(np.linspace(0, T - 1, steps)).astype(np.int64)
    elif spacing == "leading":
        keep = (T // steps) * np.arange(steps, dtype=np.int64)
    elif spacing == "trailing":
        keep = np.round(np.arange(T, 0, -T / steps)).astype(np.int64)[::-1] - 1
    elif spacing == "quadratic":
        keep = (np.linspace(0, np.sqrt(T * 0.8), steps) ** 2).astype(np.int64)
    elif spacing == "karras":
        if alphas_cumprod is None or len(alphas_cumprod) != T:
            raise ValueError("spacing 'karras' needs the process's alphas_cumprod [T]")
        keep = karras_timesteps(alphas_cumprod, steps, sigma_max)
    else:
        raise ValueError(f"unknown spacing {spacing!r}; valid: {', '.join(SPACINGS)}")
    if len(keep) != steps or np.any(np.diff(keep) <= 0):
        raise ValueError(f"spacing {spacing!r} gives repeated timesteps for {steps} steps of T = {T}; use fewer steps")
    return keep


class GaussianDiffusion:
    """Forward process, training loss and reverse samplers for a fixed ``betas`` [T] (float64)."""

    def __init__(self, betas: np.ndarray, timestep_map: Optional[np.ndarray] = None, prediction: str = "eps"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; valid: {', '.join(PREDICTIONS)}")
        self.prediction = prediction
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
        self._names = (*consts, "timestep_map")
        self._device_copies: dict[torch.device, dict[str, torch.Tensor]] = {}

    def _on(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Every coefficient table on ``device``, copied there once (the float64 -> float32 cast happens
        per gather, as it always has, so the values are those of a CPU run)."""
        if device not in self._device_copies:
            self._device_copies[device] = {name: getattr(self, name).to(device) for name in self._names}
        return self._device_copies[device]

    def _extract(self, name: str, t: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        """Gather table ``name`` at a batch of indices ``t`` [B], as float32 broadcastable to ``x_shape`` [B, ...]."""
        out = self._on(t.device)[name][t].float()
        return out.reshape(t.shape[0], *([1] * (len(x_shape) - 1)))

    def respace(self, steps: int, spacing: str = "linspace", sigma_max: float | None = None) -> "GaussianDiffusion":
        """The same process on ``steps`` timesteps (``spaced_timesteps``), with betas recomputed."""
        return self.subsequence(spaced_timesteps(self.num_timesteps, steps, spacing, self.alphas_cumprod_np, sigma_max))

    def subsequence(self, keep: np.ndarray) -> "GaussianDiffusion":
        """The same process on the increasing timesteps ``keep`` (any subsequence: a sampler's own choice)."""
        keep = np.asarray(keep, dtype=np.int64)
        if keep.ndim != 1 or len(keep) == 0 or np.any(np.diff(keep) <= 0) or keep[0] < 0 or keep[-1] >= self.num_timesteps:
            raise ValueError(f"expected increasing timesteps in [0, {self.num_timesteps - 1}], got {keep.tolist()}")
        alphas_cumprod = self.alphas_cumprod_np[keep]
        betas = 1.0 - alphas_cumprod / np.append(1.0, alphas_cumprod[:-1])
        return GaussianDiffusion(betas, timestep_map=self.timestep_map.numpy()[keep], prediction=self.prediction)

    # --- forward process -------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I); shapes [B, C, H, W], t [B]."""
        return (
            self._extract("sqrt_alphas_cumprod", t, x0.shape) * x0
            + self._extract("sqrt_one_minus_alphas_cumprod", t, x0.shape) * eps
        )

    def q_posterior_mean_variance(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = self._extract("posterior_mean_coef1", t, x_t.shape) * x0 + self._extract("posterior_mean_coef2", t, x_t.shape) * x_t
        return (
            mean,
            self._extract("posterior_variance", t, x_t.shape),
            self._extract("posterior_log_variance_clipped", t, x_t.shape),
        )

    def predict_x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self._extract("sqrt_recip_alphas_cumprod", t, x_t.shape) * x_t - self._extract("sqrt_recipm1_alphas_cumprod", t, x_t.shape) * eps

    def v_target(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022, eq. 14 in their notation)."""
        return self._extract("sqrt_alphas_cumprod", t, x0.shape) * eps - self._extract("sqrt_one_minus_alphas_cumprod", t, x0.shape) * x0

    def model_output(self, model: Model, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's raw output at index ``t``; the model sees the training timestep ``t`` stands for."""
        return model(x_t, self._on(t.device)["timestep_map"][t])

    def predict_eps_x0(self, model: Model, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps_theta, x0_theta) at x_t, unclipped, from either parameterisation.

        With x_t = a x_0 + s eps (a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar), a^2 + s^2 = 1) and
        v = a eps - s x_0: x_0 = a x_t - s v and eps = s x_t + a v, exactly.
        """
        out = self.model_output(model, x_t, t)
        if self.prediction == "eps":
            return out, self.predict_x0_from_eps(x_t, t, out)
        a, s = self._extract("sqrt_alphas_cumprod", t, x_t.shape), self._extract("sqrt_one_minus_alphas_cumprod", t, x_t.shape)
        return s * x_t + a * out, a * x_t - s * out

    def predict_eps(self, model: Model, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t), whatever the network predicts."""
        return self.model_output(model, x_t, t) if self.prediction == "eps" else self.predict_eps_x0(model, x_t, t)[0]

    # --- training --------------------------------------------------------------------------
    def training_losses(self, model: Model, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Per-image simple loss of Ho et al.: mean over pixels of (target - net(x_t, t))^2, shape [B];
        the target is eps, or v for v-prediction (Salimans & Ho's "SNR + 1" weighting of the x_0 error)."""
        x_t = self.q_sample(x0, t, eps)
        target = eps if self.prediction == "eps" else self.v_target(x0, t, eps)
        return (target - self.model_output(model, x_t, t)).pow(2).flatten(1).mean(1)

    # --- reverse process -------------------------------------------------------------------
    def p_mean_variance(
        self, model: Model, x_t: torch.Tensor, t: torch.Tensor, clip_denoised: bool = True
    ) -> dict[str, torch.Tensor]:
        """p_theta(x_{t-1} | x_t) with the posterior variance ("fixed small", Ho et al. sec. 3.2)."""
        eps, x0 = self.predict_eps_x0(model, x_t, t)
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
        eps = (self._extract("sqrt_recip_alphas_cumprod", t, x_t.shape) * x_t - out["pred_x0"]) / self._extract(
            "sqrt_recipm1_alphas_cumprod", t, x_t.shape
        )
        alpha_bar = self._extract("alphas_cumprod", t, x_t.shape)
        alpha_bar_prev = self._extract("alphas_cumprod_prev", t, x_t.shape)
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
        return -self.predict_eps(model, x_t, t) / self._extract("sqrt_one_minus_alphas_cumprod", t, x_t.shape)

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
        beta = self._extract("betas", t, x_t.shape)
        mean = x_t + beta * (0.5 * x_t + self.score(model, x_t, t))
        nonzero = (t != 0).float().reshape(-1, *([1] * (x_t.dim() - 1)))
        return {"sample": mean + nonzero * beta.sqrt() * noise}

    def ode_sample(self, model: Model, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, i: int) -> dict[str, torch.Tensor]:
        """One Heun (explicit trapezoidal, 2nd order) step of the probability-flow ODE, t -> t - 1.

        The probability-flow ODE of the VP-SDE, dx = -1/2 beta(t) [x + grad log p_t(x)] dt (Song 2021b,
        eq. 13), written in y = x / sqrt(alpha_bar) and sigma = sqrt((1 - alpha_bar) / alpha_bar), is
        dy/dsigma = eps(x, t) (DDIM paper, eq. 14; Karras et al. 2022, eq. 4 with s = sqrt(alpha_bar)):
        its Euler step is DDIM with eta = 0 (less the x_0 clipping). Heun's method on it is EDM's
        sampler (Karras et al. 2022, alg. 1): an Euler predictor to t - 1, the slope there, the mean of
        the two slopes; two network calls per step. The step to the data (sigma = 0) is a plain Euler
        step, as in EDM, and removes the predicted noise exactly. Deterministic: ``noise`` is unused.
        """
        sigma = self._extract("sqrt_recipm1_alphas_cumprod", t, x_t.shape)
        alpha_bar_prev = self._extract("alphas_cumprod_prev", t, x_t.shape)
        sigma_prev = torch.sqrt(1.0 / alpha_bar_prev - 1.0)
        y = x_t * self._extract("sqrt_recip_alphas_cumprod", t, x_t.shape)
        d = self.predict_eps(model, x_t, t)
        y_next = y + (sigma_prev - sigma) * d
        if i > 0:  # the whole batch is at index i (the host knows it: no device sync to find out)
            d_next = self.predict_eps(model, y_next * alpha_bar_prev.sqrt(), t - 1)
            y_next = y + (sigma_prev - sigma) * 0.5 * (d + d_next)
        return {"sample": y_next * alpha_bar_prev.sqrt()}
