"""The write-up's figures, each drawn from the typed stage outputs and saved as a PNG in reports/main/.

Matplotlib's non-interactive Agg canvas is used explicitly (no ``matplotlib.use`` at import).
Schedules get the default palette's colours in registry order, so a schedule keeps its colour
whichever schedules a run lists, and a new schedule needs no colour of its own.
"""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ddpm_study import schedules, training
from ddpm_study.config import StudyConfig
from ddpm_study.files import atomic_path

from .. import outputs
from ..outputs import Cell, SweepMetrics
from . import findings

_PALETTE = list(mcolors.TABLEAU_COLORS)


def color(name: str) -> str:
    return _PALETTE[list(schedules.SCHEDULES).index(name) % len(_PALETTE)]


def _subplots(nrows: int, ncols: int, figsize: tuple[float, float], squeeze: bool = True, sharey: bool = False):
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, sharey=sharey)


def _save(fig: Figure, name: str) -> str:
    with atomic_path(outputs.REPORT_DIR / name) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return name


def alphas_cumprod(cfg: StudyConfig, name: str) -> np.ndarray:
    return np.cumprod(1 - cfg.betas(name))


def schedule_figure(cfg: StudyConfig) -> str:
    """alpha_bar_t and log-SNR(t) of every registered schedule at this T, with the SNR bands of the fractions table."""
    T = cfg.diffusion.timesteps
    fig, (ax1, ax2) = _subplots(1, 2, figsize=(10, 3.6))
    t = np.arange(T)
    for name in schedules.SCHEDULES:
        ac = alphas_cumprod(cfg, name)
        ax1.plot(t, ac, label=name, color=color(name))
        ax2.plot(t, schedules.log_snr(ac), label=name, color=color(name))
    ax2.axhspan(findings.LOW_SNR, findings.HIGH_SNR, color="0.85", zorder=0, label="medium SNR")
    ax1.set(xlabel="t", ylabel=r"$\bar\alpha_t$", title=r"$\bar\alpha_t$")
    ax2.set(xlabel="t", ylabel="log SNR", title=r"log SNR$(t) = \log \bar\alpha_t / (1 - \bar\alpha_t)$")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, "schedules.png")


def loss_by_bucket(cfg: StudyConfig, history: list[outputs.HistoryRow]) -> tuple[np.ndarray, np.ndarray]:
    """Bucket centres t and the mean training loss per bucket over the final rows (``training.final_rows``)."""
    tail = training.final_rows(history)
    buckets = cfg.train.loss_buckets
    centres = (np.arange(buckets) + 0.5) * cfg.diffusion.timesteps / buckets
    # nanmean: a bucket no timestep fell into in a logging window is None (NaN) there.
    means = [np.nanmean(np.array([row[f"loss_bucket_{i}"] for row in tail], dtype=float)) for i in range(buckets)]
    return centres, np.array(means)


def loss_figures(cfg: StudyConfig) -> tuple[str, str]:
    """Training curves; and loss per timestep bucket against t and against the bucket's log-SNR.

    The epsilon-prediction losses of different schedules at the same t are not comparable (x_t
    holds a different amount of signal); at the same log-SNR they are.
    """
    fig, ax = _subplots(1, 1, figsize=(6, 3.6))
    fig2, (ax2, ax3) = _subplots(1, 2, figsize=(11, 3.8))
    for name in cfg.schedule:
        history = outputs.read_train_history(name)
        ax.plot([r["step"] for r in history], [r["loss"] for r in history], label=name, color=color(name))
        centres, per_bucket = loss_by_bucket(cfg, history)
        lam = schedules.log_snr(alphas_cumprod(cfg, name))[centres.astype(int)]
        ax2.plot(centres, per_bucket, marker="o", label=name, color=color(name))
        ax3.plot(lam, per_bucket, marker="o", label=name, color=color(name))
    ax.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    ax2.set(xlabel="t (bucket centre)", ylabel="loss", yscale="log", title="loss by timestep bucket (last 10% of training)")
    ax3.set(xlabel="log SNR at the bucket centre", ylabel="loss", yscale="log", title="the same buckets against log SNR")
    ax3.invert_xaxis()  # noisier to the right, as t
    for a in (ax, ax2, ax3):
        a.grid(alpha=0.3)
        a.legend()
    return _save(fig, "loss.png"), _save(fig2, "loss_by_timestep.png")


STYLES = {"ddpm": ("-", "o"), "ddim": ("--", "s"), "sde": ("-.", "v"), "ode": (":", "D"), "ode_clip": ((0, (1, 1)), "P"), "dpmpp2m": ((0, (5, 1, 1, 1)), "^")}  # per sampler


def sweep_figure(cfg: StudyConfig, sweep: SweepMetrics, w: float = 0.0) -> str:
    """FID and KID against the network calls per sample (NFE, log x; each point at the calls its sampler made),
    one curve per schedule and sampler, at guidance weight ``w`` (conditional models; ``guidance_figure`` has the
    other weights)."""
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    styles = STYLES
    budgets = cfg.sweep.all_budgets
    for name in cfg.schedule:
        for sampler in cfg.sweep.samplers:
            keys = [Cell(sampler, n, w) for n in cfg.sweep.budgets(sampler)]
            cells = [sweep.cells[k].scores[name] for k in keys]
            line, marker = styles.get(sampler, (":", "^"))
            for ax, key, std in ((axes[0], "fid", "fid_std"), (axes[1], "kid_mean", "kid_std")):
                ax.errorbar([k.calls for k in keys], [getattr(c, key) for c in cells], yerr=[getattr(c, std) for c in cells],
                            linestyle=line, marker=marker, color=color(name), capsize=3, label=f"{name} {sampler.upper()}")
    floor = sweep.real_vs_real
    for ax, key in ((axes[0], "fid"), (axes[1], "kid_mean")):
        ax.axhline(getattr(floor, key), color="black", linewidth=1, linestyle=":", label="real vs real (floor)")
        ax.set(xscale="log", xlabel="network calls per sample (NFE)")
        ax.set_xticks(budgets, [str(s) for s in budgets])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    guided = f", w = {w:g}" if cfg.model.num_classes else ""
    axes[0].set(ylabel="FID", title=f"FID ± jackknife std, N = {sweep.num_images}{guided}")
    axes[1].set(ylabel="KID", title="KID ± std over subsets")
    axes[1].legend(fontsize=7, ncol=2)
    return _save(fig, "fid_vs_nfe.png")


def guidance_figure(cfg: StudyConfig, sweep: SweepMetrics, steps: int) -> str:
    """FID against the classifier-free guidance weight at ``steps`` steps, one panel per sampler."""
    weights = sorted(cfg.sweep.guidance)
    samplers = list(cfg.sweep.samplers)
    fig, axes = _subplots(1, len(samplers), figsize=(4.5 * len(samplers), 3.8), squeeze=False, sharey=True)
    for ax, sampler in zip(axes[0], samplers):
        for name in cfg.schedule:
            cells = [sweep.cells[Cell(sampler, steps, w)].scores[name] for w in weights]
            ax.errorbar(weights, [c.fid for c in cells], yerr=[c.fid_std for c in cells], marker=STYLES.get(sampler, ("-", "o"))[1],
                        color=color(name), capsize=3, label=name)
        ax.axhline(sweep.real_vs_real.fid, color="black", linewidth=1, linestyle=":", label="real vs real (floor)")
        ax.set(xlabel="guidance weight w (−1 = unconditional)", title=f"{sampler.upper()}, {steps} steps")
        ax.set_xticks(weights, [f"{w:g}" for w in weights])
        ax.grid(alpha=0.3)
    axes[0, 0].set(ylabel=f"FID ± jackknife std, N = {sweep.num_images}")
    axes[0, -1].legend(fontsize=7)
    return _save(fig, "fid_vs_guidance.png")


def same_noise_figure(cfg: StudyConfig, columns: int = 10) -> str:
    """The first samples of every schedule, all from the same initial noise: one row per schedule."""
    fig, axes = _subplots(len(cfg.schedule), 1, figsize=(columns * 0.9, 1.1 * len(cfg.schedule)), squeeze=False)
    for ax, name in zip(axes[:, 0], cfg.schedule):
        images = torch.from_numpy(outputs.read_sample_images(name)[:columns])
        ax.imshow(_strip(images), cmap="gray", vmin=0, vmax=255)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"same x_T, {cfg.sample.sampler.upper()} {cfg.sample.steps} steps", y=1.0)
    return _save(fig, "same_noise.png")


def trajectory_figure(cfg: StudyConfig, w: float = 0.0) -> str:
    """x_t of the same seed along the reverse process, per schedule and sampler (the sweep's longest runs, at
    guidance weight ``w``)."""
    steps = max(cfg.sweep.nfe)
    rows = [(name, sampler) for sampler in cfg.sweep.samplers for name in cfg.schedule]
    fig, axes = _subplots(len(rows), 1, figsize=(9, 1.1 * len(rows)), squeeze=False)
    for ax, (name, sampler) in zip(axes[:, 0], rows):
        trajectory = torch.from_numpy(outputs.read_sweep_array(name, Cell(sampler, steps, w), "trajectory"))
        ax.imshow(_strip(trajectory[:, 0]), cmap="gray", vmin=0, vmax=255)
        ax.set_ylabel(f"{name}\n{sampler.upper()}", rotation=0, ha="right", va="center")
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"denoising the same x_T ({steps} NFE): x_T on the left, x_0 on the right", y=1.0)
    return _save(fig, "trajectory.png")


def _strip(images_uint8: torch.Tensor) -> np.ndarray:
    """A row of uint8 images [N, C, H, W] as one 2-D (grey) or 3-D (RGB) array."""
    import torchvision.utils as vutils

    grid = vutils.make_grid(images_uint8, nrow=len(images_uint8), padding=2, pad_value=255).permute(1, 2, 0).numpy()
    return grid[..., 0] if images_uint8.shape[1] == 1 else grid
