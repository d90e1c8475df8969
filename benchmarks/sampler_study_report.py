"""The write-up of the samplers' committed experiment (reports/samplers/README.md), from benchmarks/sampler_study.json
only: every number and verdict below is computed from that file (``python benchmarks/sampler_study.py --score``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.writeup.findings import fmt  # noqa: E402
from pipeline.writeup.tables import markdown  # noqa: E402

NOISE_SIGMAS = 2.0  # "within noise": |diff| <= 2 std, as the main study


def _pair(p: dict) -> str:
    return f"{p['diff']:+.1f} ± {p['std']:.1f}" + (" ≈" if p["within_noise"] else "")


def _cells(result: dict, part: str) -> list[tuple[str, dict]]:
    return [(name, c) for name, d in result["schedules"].items() for c in d["cells"] if c["part"] == part]


def _sigma_label(s: float) -> str:
    return "none" if not s else f"σ ≤ {s:g}"


def long_section(result: dict, baseline: str) -> list[str]:
    rows, verdicts = [], []
    for name, c in _cells(result, "long"):
        prev = c.get("vs_previous")
        rows.append({"schedule": name, "sampler": c["sampler"].upper(), "steps": c["steps"], "NFE": c["nfe"],
                     "FID": fmt(c["fid"], c["fid_std"]), f"Δ vs {baseline}": _pair(c["vs_baseline"]),
                     "Δ vs previous length": _pair(prev) if prev else ""})
    by = {}
    for name, c in _cells(result, "long"):
        by.setdefault((name, c["sampler"]), []).append(c)
    for (name, sampler), cs in by.items():
        if len(cs) < 2:
            continue
        last = cs[-1]
        converged = last.get("vs_previous", {}).get("within_noise")
        matches = last["vs_baseline"]["within_noise"] or last["vs_baseline"]["diff"] < 0
        share = abs(last["vs_previous"]["diff"]) / cs[-2]["fid"]
        verdicts.append(
            f"{name}, {sampler.upper()}: from {cs[-2]['steps']} to {last['steps']} steps FID moves "
            f"{_pair(last['vs_previous'])}, {share:.1%} of its FID "
            f"({'converged within noise' if converged else 'beyond noise'}); at "
            f"{last['steps']} steps ({last['nfe']} NFE) it is {_pair(last['vs_baseline'])} from {baseline} "
            f"({'matches it' if matches else 'worse beyond noise'}).")
    not_run = result.get("not_run", [])
    large = [(name, d["betas"]) for name, d in result["schedules"].items() if "betas" in d]
    if large:
        verdicts.append(
            "Euler–Maruyama linearises each reverse step; on the chain's own betas its step size is β_t, so it is "
            "accurate only where β_t is small, at any number of steps up to T: "
            + "; ".join(f"{name}: max β_t {b['max']:.3g}, " + ", ".join(
                f"{b[k]} steps above {k.split('_')[1]}" for k in b if k.startswith("above_")) for name, b in large)
            + ". A Heun ODE that stops moving with more steps has converged to the model's own probability-flow ODE: "
              "what is left against DDPM is the model's ε error (the x̂₀ section below), not the discretisation.")
    return ["## Long sweeps: where the SDE and the ODE converge", "",
            "Euler–Maruyama on the reverse VP-SDE (`sde`) and Heun on the probability-flow ODE without clipping (`ode`), "
            "linspace timesteps from t = T − 1. Δ: paired differences (≈: within noise).", "",
            markdown(pd.DataFrame(rows)), "", *[f"- {v}" for v in verdicts],
            *([f"- Not run yet (`python benchmarks/sampler_study.py` resumes them): {', '.join(not_run)}."]
              if not_run else []), ""]


def spacing_section(result: dict) -> list[str]:
    rows, notes = [], []
    for name, c in _cells(result, "spacing"):
        rows.append({"sampler": c["sampler"].upper(), "schedule": name,
                     "spacing": c["spacing"] + (f" ({_sigma_label(c['sigma_max'])})" if c["sigma_max"] else ""),
                     "from t": c["t_start"], "FID": fmt(c["fid"], c["fid_std"]), "Δ vs linspace": _pair(c["vs_linspace"])})
    table = pd.DataFrame(rows)
    for spacing in dict.fromkeys(c["spacing"] for _, c in _cells(result, "spacing")):
        cs = [c for _, c in _cells(result, "spacing") if c["spacing"] == spacing]
        better = sum(1 for c in cs if not c["vs_linspace"]["within_noise"] and c["vs_linspace"]["diff"] < 0)
        worse = sum(1 for c in cs if not c["vs_linspace"]["within_noise"] and c["vs_linspace"]["diff"] > 0)
        notes.append(f"{spacing}: better than linspace beyond noise in {better} of {len(cs)} (sampler, schedule) cells, "
                     f"worse in {worse}, within noise in {len(cs) - better - worse}.")
    nfe = _cells(result, "spacing")[0][1]["budget"]
    return ["## Timestep spacing", "",
            f"At {nfe} NFE, each sampler on the spacings besides the default linspace (which keeps t = T − 1): leading "
            "and quadratic (DDIM app. D.2) start below T, trailing (Lin et al. 2024) keeps T − 1, karras is ρ = 7 in σ "
            "from EDM's σ_max = 80 (cosine's σ_T ≈ 2·10⁴ would repeat timesteps). Δ against the sweep's linspace cell, "
            "paired.", "", *[f"- {n}" for n in notes], "", markdown(table), ""]


def start_section(result: dict) -> list[str]:
    rows = []
    for name, c in _cells(result, "start"):
        rows.append({"sampler": c["sampler"].upper(), "schedule": name, "start": _sigma_label(c["sigma_max"]),
                     "from t": c["t_start"], "FID": fmt(c["fid"], c["fid_std"]),
                     "Δ vs no bound": _pair(c["vs_linspace"]) if "vs_linspace" in c else ""})
    nfe = _cells(result, "start")[0][1]["budget"]
    unbounded = {(name, c["sampler"]): c for name, c in _cells(result, "start") if not c["sigma_max"]}
    notes = []
    for name, c in _cells(result, "start"):
        base = unbounded.get((name, c["sampler"]))
        if c["sigma_max"] and base is not None:
            notes.append((name, c, c["fid"] - base["fid"]))
    best = min(notes, key=lambda n: n[2]) if notes else None
    lines = ["## Where the reverse pass starts: σ_max", "",
             f"At {nfe} NFE, the reverse pass started at the last timestep with σ = √((1 − ᾱ)/ᾱ) ≤ σ_max, from "
             "N(0, I) all the same (`sample.sigma_max`, `sweep.sigma_max`): 80 is EDM's bound, 164 = e^5.1 is "
             "DPM-Solver's λ ≥ −5.1 for cosine models (diffusers' `lambda_min_clipped`). Δ against the same sampler "
             "without a bound (the sweep's cell where the sweep runs it), paired. Where the schedule's last σ is "
             "already below σ_max (quadratic: σ_T ≈ 37; linear: 157 < 164) the bound is idle and the cell repeats the "
             "unbounded samples exactly (Δ = 0 ± 0: a check of the bookkeeping).", "", markdown(pd.DataFrame(rows)), ""]
    if best:
        lines += [f"- The largest gain: {best[0]}, {best[1]['sampler'].upper()} with {_sigma_label(best[1]['sigma_max'])}, "
                  f"FID {best[2]:+.1f}.", ""]
    return lines


def x0_section(result: dict, out: Path) -> list[str]:
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    rows = []
    for name, d in result["schedules"].items():
        e = pd.DataFrame(d["x0_error"])
        axes[0].plot(e.sigma, e.eps_rms, marker=".", label=name)
        axes[1].plot(e.sigma, e.x0_rms, marker=".", label=name)
        axes[2].plot(e.sigma, e.x0_out_of_range, marker=".", label=name)
        last = e.iloc[-1]
        at1 = e.iloc[int(np.argmin(np.abs(np.log(e.sigma) - np.log(1.0))))]
        at80 = e.iloc[int(np.argmin(np.abs(np.log(e.sigma) - np.log(80.0))))]
        rows.append({"schedule": name, "σ at t = T − 1": f"{last.sigma:.3g}",
                     "ε RMS error at t = T − 1": f"{last.eps_rms:.3f}", "x̂₀ RMS error at t = T − 1": f"{last.x0_rms:.3g}",
                     "x̂₀ out of [−1, 1] at t = T − 1": f"{last.x0_out_of_range:.0%}",
                     "x̂₀ RMS error near σ = 80": f"{at80.x0_rms:.3g} (σ = {at80.sigma:.3g})",
                     "x̂₀ RMS error near σ = 1": f"{at1.x0_rms:.3g} (σ = {at1.sigma:.3g})",
                     "clipped x̂₀ RMS error at t = T − 1": f"{last.x0_clipped_rms:.3f}"})
    for ax, title in zip(axes, ("ε RMS error", "x̂₀ RMS error (unclipped)", "share of x̂₀ pixels outside [−1, 1]")):
        ax.set(xscale="log", xlabel="σ = √((1 − ᾱ)/ᾱ)", title=title)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "x0_error.png", dpi=110)
    plt.close(fig)
    x0 = {name: d["x0_error"][-1]["x0_rms"] for name, d in result["schedules"].items()}
    worst = max(x0, key=x0.get)
    return ["## Why unclipped deterministic solvers fail: the x̂₀ error an ε-model implies", "",
            "Test images noised to x_t at 40 timesteps over [0, T), the EMA model's ε̂ and the x̂₀ = (x_t − √(1 − ᾱ) ε̂)/√ᾱ "
            "it implies: the x̂₀ error is the ε error times σ. A deterministic solver's first step moves x along x̂₀; "
            "DDPM clips x̂₀ to [−1, 1] and adds fresh noise, which bound what one bad prediction can do.", "",
            "![x0 error per noise level](x0_error.png)", "", markdown(pd.DataFrame(rows)), "",
            f"- At t = T − 1 the unclipped x̂₀ error is largest for **{worst}** ({x0[worst]:.3g}, against "
            + ", ".join(f"{n} {v:.3g}" for n, v in x0.items() if n != worst)
            + "): the x̂₀ a few-step ODE starts from is noise of that size, which the clipped samplers (DDPM, DDIM, "
            "DPM-Solver++, ODE_CLIP) cut to [−1, 1] and the unclipped ODE carries forward; the σ_max bound "
            "removes the steps where it is largest.", ""]


def write_report(cfg, result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    baseline = "DDPM " + result["baseline"].split("_")[-1] + " NFE"
    lines = ["# Samplers: spacing, start bound, long SDE/ODE sweeps, and the x̂₀ error (committed experiment)", "",
             "Generated by `python benchmarks/sampler_study.py --score` from `benchmarks/sampler_study.json` (sampling: "
             "`python benchmarks/sampler_study.py`, after `dvc repro`); every number and verdict below is computed from "
             f"that file. The committed models of the main study; N = {result['num_images']} per cell from the sweep's "
             "x_T, FID against the study's reference split like a sweep cell, in one paired jackknife per schedule with "
             f"the sweep's cells, so every Δ has its paired std (≈: within noise, |Δ| ≤ {NOISE_SIGMAS:g} std). The "
             f"baseline, {baseline}, is the main write-up's ([`../main/README.md`](../main/README.md)).", "",
             *long_section(result, baseline), *spacing_section(result), *start_section(result), *x0_section(result, out)]
    (out / "README.md").write_text("\n".join(lines) + "\n")
