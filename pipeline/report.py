"""Stage `report`: the study write-up in reports/ — protocol, tables with spreads, figures, conclusions.

Every number comes from the metric files the other stages wrote (``metrics/*.json``) and every
verdict from ``findings``; the page says how to rerun it.
"""

from __future__ import annotations

import json
import platform
import shutil

import matplotlib

matplotlib.use("Agg")  # no display: render to files
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ddpm_study import schedules
from ddpm_study.diffusion import spaced_timesteps
from ddpm_study.config import StudyConfig
from ddpm_study.files import atomic_path, write_text

from . import findings, paths, tracking
from .prepare import load_array

COLORS = {"linear": "tab:blue", "quadratic": "tab:orange", "sigmoid": "tab:green", "cosine": "tab:red"}


def _save(fig, name: str) -> str:
    with atomic_path(paths.REPORTS_DIR / name) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return name


def alphas_cumprod(cfg: StudyConfig, name: str) -> np.ndarray:
    return np.cumprod(1 - schedules.get_betas(name, cfg.diffusion.timesteps, **cfg.schedules.params(name)))


def schedule_figure(cfg: StudyConfig) -> str:
    """alpha_bar_t and log-SNR(t) of all four schedules at this T, with the SNR bands of the fractions table."""
    T = cfg.diffusion.timesteps
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    t = np.arange(T)
    for name in schedules.SCHEDULES:
        ac = alphas_cumprod(cfg, name)
        ax1.plot(t, ac, label=name, color=COLORS[name])
        ax2.plot(t, schedules.log_snr(ac), label=name, color=COLORS[name])
    ax2.axhspan(findings.LOW_SNR, findings.HIGH_SNR, color="0.85", zorder=0, label="medium SNR")
    ax1.set(xlabel="t", ylabel=r"$\bar\alpha_t$", title=r"$\bar\alpha_t$")
    ax2.set(xlabel="t", ylabel="log SNR", title=r"log SNR$(t) = \log \bar\alpha_t / (1 - \bar\alpha_t)$")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, "schedules.png")


def loss_by_bucket(cfg: StudyConfig, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Bucket centres t and the mean training loss per bucket over the last tenth of training."""
    h = pd.read_csv(paths.train_history(name), sep="\t")
    tail = h.iloc[-max(1, len(h) // 10) :]  # the last tenth of training, as `final_loss`
    buckets = cfg.train.loss_buckets
    centres = (np.arange(buckets) + 0.5) * cfg.diffusion.timesteps / buckets
    return centres, np.array([tail[f"loss_bucket_{i}"].mean() for i in range(buckets)])


def loss_figures(cfg: StudyConfig) -> tuple[str, str]:
    """Training curves; and loss per timestep bucket against t and against the bucket's log-SNR.

    The epsilon-prediction losses of different schedules at the same t are not comparable (x_t
    holds a different amount of signal); at the same log-SNR they are.
    """
    fig, ax = plt.subplots(figsize=(6, 3.6))
    fig2, (ax2, ax3) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name in cfg.schedule:
        h = pd.read_csv(paths.train_history(name), sep="\t")
        ax.plot(h["step"], h["loss"], label=name, color=COLORS[name])
        centres, per_bucket = loss_by_bucket(cfg, name)
        lam = schedules.log_snr(alphas_cumprod(cfg, name))[centres.astype(int)]
        ax2.plot(centres, per_bucket, marker="o", label=name, color=COLORS[name])
        ax3.plot(lam, per_bucket, marker="o", label=name, color=COLORS[name])
    ax.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    ax2.set(xlabel="t (bucket centre)", ylabel="loss", yscale="log", title="loss by timestep bucket (last 10% of training)")
    ax3.set(xlabel="log SNR at the bucket centre", ylabel="loss", yscale="log", title="the same buckets against log SNR")
    ax3.invert_xaxis()  # noisier to the right, as t
    for a in (ax, ax2, ax3):
        a.grid(alpha=0.3)
        a.legend()
    return _save(fig, "loss.png"), _save(fig2, "loss_by_timestep.png")


def sweep_figure(cfg: StudyConfig, sweep: dict) -> str:
    """FID and KID against the number of sampling steps (log x), one curve per schedule and sampler."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"ddpm": ("-", "o"), "ddim": ("--", "s")}
    steps = sorted(cfg.sweep.steps)
    for name in cfg.schedule:
        for sampler in cfg.sweep.samplers:
            cells = [sweep["cells"][f"{sampler}_{s}"][name] for s in steps]
            line, marker = styles[sampler]
            for ax, key, std in ((axes[0], "fid", "fid_std"), (axes[1], "kid_mean", "kid_std")):
                ax.errorbar(steps, [c[key] for c in cells], yerr=[c[std] for c in cells], linestyle=line, marker=marker,
                            color=COLORS[name], capsize=3, label=f"{name} {sampler.upper()}")
    floor = sweep["real_vs_real"]
    for ax, key in ((axes[0], "fid"), (axes[1], "kid_mean")):
        ax.axhline(floor[key], color="black", linewidth=1, linestyle=":", label="real vs real (floor)")
        ax.set(xscale="log", xlabel="sampling steps")
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0].set(ylabel="FID", title=f"FID ± jackknife std, N = {sweep['num_images']}")
    axes[1].set(ylabel="KID", title="KID ± std over subsets")
    axes[1].legend(fontsize=7, ncol=2)
    return _save(fig, "fid_vs_steps.png")


def same_noise_figure(cfg: StudyConfig, columns: int = 10) -> str:
    """The first samples of every schedule, all from the same initial noise: one row per schedule."""
    fig, axes = plt.subplots(len(cfg.schedule), 1, figsize=(columns * 0.9, 1.1 * len(cfg.schedule)), squeeze=False)
    for ax, name in zip(axes[:, 0], cfg.schedule):
        images = torch.from_numpy(load_array(paths.sample_images(name))[:columns])
        ax.imshow(_strip(images), cmap="gray", vmin=0, vmax=255)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"same x_T, {cfg.sample.sampler.upper()} {cfg.sample.steps} steps", y=1.0)
    return _save(fig, "same_noise.png")


def trajectory_figure(cfg: StudyConfig) -> str:
    """x_t of the same seed along the reverse process, per schedule and sampler (the sweep's longest runs)."""
    steps = max(cfg.sweep.steps)
    rows = [(name, sampler) for sampler in cfg.sweep.samplers for name in cfg.schedule]
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.1 * len(rows)), squeeze=False)
    for ax, (name, sampler) in zip(axes[:, 0], rows):
        trajectory = torch.from_numpy(load_array(paths.sweep_array(name, sampler, steps, "trajectory")))
        ax.imshow(_strip(trajectory[:, 0]), cmap="gray", vmin=0, vmax=255)
        ax.set_ylabel(f"{name}\n{sampler.upper()}", rotation=0, ha="right", va="center")
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"denoising the same x_T ({steps} steps): x_T on the left, x_0 on the right", y=1.0)
    return _save(fig, "trajectory.png")


def _strip(images_uint8: torch.Tensor) -> np.ndarray:
    """A row of uint8 images [N, C, H, W] as one 2-D (grey) or 3-D (RGB) array."""
    import torchvision.utils as vutils

    grid = vutils.make_grid(images_uint8, nrow=len(images_uint8), padding=2, pad_value=255).permute(1, 2, 0).numpy()
    return grid[..., 0] if images_uint8.shape[1] == 1 else grid


def headline_table(cfg: StudyConfig, train: dict, evaluate: dict) -> pd.DataFrame:
    rows = []
    for name in cfg.schedule:
        e = evaluate[name]
        rows.append({
            "schedule": name,
            "FID": findings.fmt(e["fid"], e["fid_std"]),
            "KID ×10³": findings.fmt(1e3 * e["kid_mean"], 1e3 * e["kid_std"]),
            "final loss": train[name]["final_loss"],
            "ᾱ_T": train[name]["alpha_bar_T"],
            "log-SNR range": f"[{train[name]['log_snr_min']:.1f}, {train[name]['log_snr_max']:.1f}]",
            "train time (min)": train[name]["train_time_s"] / 60,
        })
    return pd.DataFrame(rows)


def anchors_table(scores: dict) -> pd.DataFrame:
    """Floor and ceilings at one N, the frame every FID in the same table is read against."""
    rows = [("real vs real (floor)", scores["real_vs_real"]), ("Gaussian noise", scores["ceilings"]["gaussian_noise"]),
            ("mean image, repeated", scores["ceilings"]["mean_image"])]
    return pd.DataFrame([{"reference point": label, "FID": findings.fmt(r["fid"], r["fid_std"]),
                          "KID ×10³": findings.fmt(1e3 * r["kid_mean"], 1e3 * r["kid_std"])} for label, r in rows])


def pairs_table(scores: dict, names: list[str]) -> pd.DataFrame:
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            p = findings.pair(scores, a, b)
            rows.append({"pair": f"{a} − {b}", "ΔFID": findings.fmt(p["diff"], p["std"]),
                         "verdict": "within noise" if p["within_noise"] else ("a better" if p["diff"] < 0 else "b better")})
    return pd.DataFrame(rows)


def sweep_tables(cfg: StudyConfig, sweep: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """FID ± std per (schedule, sampler) x steps; the best schedule per cell; and a long CSV form."""
    steps = sorted(cfg.sweep.steps)
    wide, best, long = [], [], []
    for sampler in cfg.sweep.samplers:
        for name in cfg.schedule:
            row = {"schedule": name, "sampler": sampler.upper()}
            for s in steps:
                c = sweep["cells"][f"{sampler}_{s}"][name]
                row[f"{s} steps"] = findings.fmt(c["fid"], c["fid_std"])
                long.append({"schedule": name, "sampler": sampler, "steps": s, **c})
            wide.append(row)
        for s in steps:
            cell = sweep["cells"][f"{sampler}_{s}"]
            winner = min(cfg.schedule, key=lambda n: cell[n]["fid"])
            tied = [n for n in cfg.schedule if n != winner and findings.pair(cell, n, winner)["within_noise"]]
            best.append({"sampler": sampler.upper(), "steps": s, "lowest FID": winner,
                         "within noise of it": ", ".join(tied) or "none"})
    return pd.DataFrame(wide), pd.DataFrame(best), pd.DataFrame(long)


def snr_table(cfg: StudyConfig) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Fractions of all T steps, and of the fewest-step sampler's steps, in each SNR band."""
    fewest = min(cfg.sweep.steps)
    rows, fractions = [], {}
    for name in schedules.SCHEDULES:
        ac = alphas_cumprod(cfg, name)
        f = fractions[name] = findings.snr_fractions(ac)
        few = findings.snr_fractions(ac[spaced_timesteps(cfg.diffusion.timesteps, fewest)])
        rows.append({"schedule": name, "high SNR (> 10)": f"{f['high']:.0%}", "medium": f"{f['medium']:.0%}",
                     "low SNR (< 0.1)": f"{f['low']:.0%}", "nearly noise (SNR < 0.01)": f"{f['near_noise']:.0%}",
                     f"high / medium / low of the {fewest} respaced steps": f"{few['high']:.0%} / {few['medium']:.0%} / {few['low']:.0%}"})
    return pd.DataFrame(rows), fractions


def full_chain_minutes(cfg: StudyConfig, sweep: dict) -> float:
    """Sampling time of a T-step run at the sweep's N, extrapolated from the `sample` stage's measured speed."""
    infos = [json.loads(paths.sample_info(n).read_text()) for n in cfg.schedule]
    per_image_step = np.mean([i["sample_time_s"] / (i["num_images"] * i["steps"]) for i in infos])
    return per_image_step * sweep["num_images"] * cfg.diffusion.timesteps / 60


def hardware(cfg: StudyConfig) -> str:
    if cfg.device != "cpu" and torch.cuda.is_available():
        return "CUDA GPU " + torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _md(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4g")


def run(cfg: StudyConfig) -> None:
    paths.REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    train = json.loads(paths.TRAIN_METRICS.read_text())
    evaluate = json.loads(paths.EVALUATE_METRICS.read_text())
    sweep = json.loads(paths.SWEEP_METRICS.read_text())
    names, steps, samplers = list(cfg.schedule), sorted(cfg.sweep.steps), list(cfg.sweep.samplers)

    headline = headline_table(cfg, train, evaluate)
    sweep_wide, sweep_best, sweep_long = sweep_tables(cfg, sweep)
    snr, fractions = snr_table(cfg)
    for table, name in ((headline, "results.csv"), (sweep_long, "sweep.csv")):
        with atomic_path(paths.REPORTS_DIR / name) as tmp:
            table.to_csv(tmp, index=False)
    schedule_png = schedule_figure(cfg)
    loss_png, bucket_png = loss_figures(cfg)
    sweep_png = sweep_figure(cfg, sweep)
    same_png, trajectory_png = same_noise_figure(cfg), trajectory_figure(cfg)
    for name in names:
        for src, dst in ((paths.sample_grid(name), f"samples_{name}.png"), (paths.sample_gif(name), f"denoising_{name}.gif"),
                         (paths.forward_strip(name), f"forward_{name}.png")):
            with atomic_path(paths.REPORTS_DIR / dst) as tmp:
                shutil.copyfile(src, tmp)

    s, e, tr = cfg.sample, cfg.evaluate, cfg.train
    sample_info = json.loads(paths.sample_info(names[0]).read_text())
    sampler_text = s.sampler.upper() + (f" (eta {s.eta})" if s.sampler == "ddim" else "")
    train_minutes = sum(train[n]["train_time_s"] for n in names) / 60
    lines = [
        f"# Which noise schedule? A reproducible DDPM study on {cfg.data.dataset}",
        "",
        "Generated by `dvc repro` (stage `report`) from `metrics/train.json`, `metrics/evaluate.json` and",
        "`metrics/sweep.json`; every number and every verdict below is computed from those files. Do not edit by",
        "hand: change `params.yaml` and rerun `dvc repro`.",
        "",
        "## Conclusions",
        "",
        f"- **At the study's main setting** ({sampler_text}, {s.steps} respaced steps, N = {evaluate['num_images']}): "
        + findings.ranking(evaluate, names),
        *[f"- **With {cell_steps} steps, {sampler.upper()}** (N = {sweep['num_images']}): "
          + findings.ranking(sweep["cells"][f"{sampler}_{cell_steps}"], names)
          for sampler in samplers for cell_steps in sorted({steps[0], steps[-1]})],
        f"- {findings.placement(evaluate, names)} Differences between schedules are to be read against that span.",
        *([f"- **Samplers** (N = {sweep['num_images']}): {findings.sampler_gap(sweep, names, steps)} DDIM here is "
            "deterministic (eta = 0); a likely reason (not tested here) is that it cannot correct the errors of these "
            "briefly trained models, whose DDIM samples keep residual noise (trajectory figure)."] if {"ddpm", "ddim"} <= set(samplers) else []),
        "",
        "### Against the literature (Nichol & Dhariwal 2021, *Improved DDPM*)",
        "",
        "*Expectation drawn from their paper: cosine's advantage over linear is largest when the reverse process is "
        "shortened (few sampling steps) and fades at full length:*",
        "",
        *[f"- {line}" for line in findings.nichol_dhariwal_shortening(sweep, samplers, steps, names)],
        "",
        "*The end of the linear schedule is wasted:*",
        "",
        f"- {findings.wasted_tail(fractions)}",
        "",
        "## Protocol",
        "",
        f"- **Data**: {cfg.data.dataset}, "
        + (f"first {cfg.data.train_subset} training images" if cfg.data.train_subset else "all training images")
        + ", scaled to [−1, 1].",
        f"- **Model**: U-Net, base {cfg.model.base_channels} channels, multipliers {list(cfg.model.channel_mults)}, "
        f"{cfg.model.num_res_blocks} residual block(s) per level, attention in the middle block; ε-prediction, "
        f"T = {cfg.diffusion.timesteps}. **Training**: {tr.steps} steps of batch {tr.batch_size} "
        f"({tr.steps * tr.batch_size:,} images), AdamW lr {tr.lr:g}, EMA {tr.ema_decay}; samples come from the "
        f"EMA weights. One training seed ({cfg.seed}) per schedule.",
        f"- **Samplers**: DDPM ancestral sampling on respaced timesteps (posterior variance β̃, x̂₀ clipped to "
        f"[−1, 1]) and DDIM with eta = {cfg.sweep.eta:g}; respacing keeps t = T − 1, so every run starts from noise.",
        f"- **Main setting**: {sampler_text}, {sample_info['steps']} steps, N = {evaluate['num_images']} samples per schedule. "
        f"**Sweep**: {', '.join(x.upper() for x in samplers)} at {', '.join(map(str, steps))} steps, "
        f"N = {sweep['num_images']} per cell."
        + (f" The full {cfg.diffusion.timesteps}-step chain is not in this sweep: at the measured sampling speed it "
           f"would take about {full_chain_minutes(cfg, sweep):.0f} min per schedule and sampler here (add it to "
           "`sweep.steps` on a GPU)." if max(steps) < cfg.diffusion.timesteps else ""),
        "- **Same noise**: every run (schedule, sampler, step count) starts from the same x_T; within a setting the "
        "schedules also share DDPM's per-step noise, so schedule comparisons are paired.",
        f"- **Metrics**: FID and KID on 2048-d Inception-v3 pool features (torch-fidelity `inception-v3-compat`, the "
        f"reference FID network), against a fixed split of {evaluate['num_images']} real training images "
        f"(seed {cfg.seed}). FID is computed exactly through the samples (`ddpm_study.uncertainty`, equal to "
        f"torch-fidelity's `sqrtm` result to 1e-6 in the tests, at this study's shapes included). KID: polynomial kernel, {e.kid_subsets} subsets of {e.kid_subset_size}.",
        f"- **Spreads**: FID ± its delete-a-group jackknife standard error ({e.jackknife_groups} groups of the generated "
        "*and* of the reference features left out in turn); schedules drop the same groups, so each difference ΔFID "
        "has its own paired std. The jackknife is conservative (Efron–Stein): on synthetic features it overstated the "
        "spread over true redraws 1.2–1.3×, where a bootstrap overstated it 3.7–4.7× at N < d "
        "(`benchmarks/spread_vs_redraws.py`). "
        f"\"Within noise\" means |ΔFID| ≤ {findings.NOISE_SIGMAS:g} × that std. KID ± the std over its subsets. The "
        "spread covers the sampling noise of the estimate at this N (another sampling seed, another real split), "
        "not training noise: each schedule was trained once.",
        "- **Floor and ceilings** at the same N: a second, disjoint real split (real vs real) and two trivially bad "
        "generators (N(0, I) pixels; the data set's mean image repeated).",
        f"- **Hardware**: {hardware(cfg)}; training took {train_minutes:.0f} min for {len(names)} schedule(s).",
        "",
        f"FID at N = {evaluate['num_images']} or {sweep['num_images']} is strongly biased upwards: compare schedules "
        "with each other at the same N and with the floor beside them, never with published 50k-sample numbers or "
        "across tables of different N.",
        "",
        f"## Main setting: {sampler_text}, {s.steps} steps, N = {evaluate['num_images']}",
        "",
        _md(headline),
        "",
        _md(anchors_table(evaluate)),
        "",
        "Paired differences (a − b; negative: a is better):",
        "",
        _md(pairs_table(evaluate, names)) or "(a single schedule: nothing to compare)",
        "",
        f"## Quality against sampling cost (N = {sweep['num_images']} per cell)",
        "",
        f"![FID and KID against sampling steps]({sweep_png})",
        "",
        _md(sweep_wide),
        "",
        _md(sweep_best),
        "",
        _md(anchors_table(sweep)),
        "",
        "All cells, with KID: [`sweep.csv`](sweep.csv); per-cell paired differences: "
        "`metrics/sweep.json`. `dvc plots show` draws the same curves from `plots/sweep/`.",
        "",
        "## Where the schedules differ",
        "",
        f"![alpha_bar and log-SNR]({schedule_png})",
        "",
        "Share of timesteps in each SNR band (grey in the right panel), over all T steps and over the few-step "
        "sampler's respaced steps:",
        "",
        _md(snr),
        "",
        f"![loss by timestep]({bucket_png})",
        "",
        "Left: ε-prediction loss per tenth of [0, T) at the end of training. Right: the same buckets placed at their "
        "log-SNR, where schedules can be compared: a schedule spends its training where its buckets are.",
        "",
        f"![training loss]({loss_png})",
        "",
        f"## Same noise, {len(names)} schedule{'s' if len(names) > 1 else ''}",
        "",
        f"![same initial noise]({same_png})",
        "",
        f"![denoising trajectories]({trajectory_png})",
        "",
        "| " + " | ".join(names) + " |",
        "|" + "---|" * len(names),
        "| " + " | ".join(f"![{n}](samples_{n}.png)" for n in names) + " |",
        "| " + " | ".join(f"![{n} denoising](denoising_{n}.gif)" for n in names) + " |",
        "",
        "## Forward process q(x_t | x_0), t = 0 … T−1 left to right",
        "",
        *[f"**{n}**\n\n![{n} forward](forward_{n}.png)\n" for n in names],
        "## Reproduce",
        "",
        "`bash scripts/study.sh` on a fresh clone (or `dvc repro` in a set-up environment) reruns every stage from "
        "the data. On the same kind of CPU with the same torch build the runs are deterministic (seeded noise, "
        "deterministic CPU kernels), so the numbers reproduce exactly; another CPU model or a GPU changes "
        "floating-point rounding, hence the trained weights and the FIDs at the level of the spreads above.",
    ]
    write_text(paths.REPORT, "\n".join(lines) + "\n")
    # DVC may have restored some stages from its run cache without running them: make sure every
    # schedule's run of this execution holds all its results before closing the execution.
    for name in names:
        with tracking.schedule_run(cfg, name, "report"):
            pass
    with tracking.execution_run(cfg) as run:
        run.log_metrics({f"{n}/fid": evaluate[n]["fid"] for n in names})
        for path in sorted(paths.REPORTS_DIR.iterdir()):
            run.log_artifact(path, "report")
