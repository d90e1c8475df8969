"""The extended study's write-up (reports/extended/): tables, figures and sentences from its metric files.

Like the main write-up, nothing is typed by hand: every number comes from ``extended/metrics/*.json``
or a committed benchmark, every verdict from the rule that made it (``replication``, ``uncertainty``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ddpm_study.config import StudyConfig
from ddpm_study.files import atomic_path
from ddpm_study.replication import CONFIDENCE, extrapolated_crossing, plateau
from ddpm_study.uncertainty import NOISE_SIGMAS

from .. import outputs
from ..outputs import Cell, CrossMetrics, LongerMetrics, Part, SeedsMetrics
from .figures import STYLES, _subplots
from .findings import fmt, marked
from .tables import markdown

LABELS = {"ddpm": "DDPM", "ddim": "DDIM", "dpmpp2m": "DPM++(2M)", "ode": "ODE", "ode_clip": "ODE (clipped)", "sde": "SDE"}


@dataclass(frozen=True)
class Inputs:
    cfg: StudyConfig
    seeds: SeedsMetrics
    undertraining: LongerMetrics
    cross: CrossMetrics
    ddim_variants: dict[str, Any]  # benchmarks/ddim_variants.json


def _save(fig, name: str) -> str:
    with atomic_path(outputs.EXTENDED_REPORT_DIR / name) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return name


def _label(cell: Cell) -> str:
    return f"{LABELS.get(cell.sampler, cell.sampler)} {cell.steps}"


def _cell_order(cells) -> list[Cell]:
    """Cells as the main write-up orders settings: DDPM first, then by steps."""
    return sorted(cells, key=lambda c: (c.sampler != "ddpm", c.sampler, c.steps))


# --- undertraining -------------------------------------------------------------------------------
def undertraining_table(u: LongerMetrics) -> pd.DataFrame:
    rows = []
    for step in u.snapshots:
        snap = u.cells[step]
        rows.append({"training step": step, "final loss": snap.final_loss,
                     **{_label(c): fmt(snap.cells[c].fid, snap.cells[c].fid_std) for c in _cell_order(snap.cells)}})
    return pd.DataFrame(rows)


def gap_table(u: LongerMetrics) -> pd.DataFrame:
    rows = []
    for sampler, by_nfe in u.minus_ddpm.items():
        for nfe in sorted(by_nfe):
            per_step = by_nfe[nfe]
            rows.append({"sampler": LABELS.get(sampler, sampler), "NFE": nfe,
                         **{f"step {s}": fmt(per_step[s].diff, per_step[s].std) for s in u.snapshots},
                         "ahead from": u.overtakes[sampler][nfe] or "never",
                         "line in log steps reaches 0 at": _crossing_text(u, sampler, nfe)})
    return pd.DataFrame(rows)


def trend_snapshots(u: LongerMetrics) -> list[int]:
    """The snapshots the extrapolation fits: from the main model's step on (the early ones fall much faster)."""
    later = [s for s in u.snapshots if s >= u.main_steps]
    return later if len(later) >= 3 else u.snapshots


def crossing(u: LongerMetrics, sampler: str, nfe: int) -> dict[str, float] | None:
    steps = trend_snapshots(u)
    g = u.minus_ddpm[sampler][nfe]
    return extrapolated_crossing(steps, [g[s].diff for s in steps], [g[s].std for s in steps])


def _crossing_text(u: LongerMetrics, sampler: str, nfe: int) -> str:
    if u.overtakes[sampler][nfe]:
        return "(ahead)"
    c = crossing(u, sampler, nfe)
    return "not narrowing" if c is None else f"{c['step']:,.0f} ({c['low']:,.0f}–{c['high']:,.0f})"


def gain_table(u: LongerMetrics) -> pd.DataFrame:
    """DDPM's paired change from each snapshot to the next, per NFE (negative: still improving)."""
    steps = list(zip(u.snapshots[:-1], u.snapshots[1:]))
    return pd.DataFrame([{"NFE": nfe, **{f"{a} → {b}": fmt(u.ddpm_gain[nfe][a].diff, u.ddpm_gain[nfe][a].std) for a, b in steps},
                          "stops improving after": plateau(u.ddpm_gain[nfe]) or "still improving"}
                         for nfe in sorted(u.ddpm_gain)])


def undertraining_figure(u: LongerMetrics) -> str:
    fig, ax = _subplots(1, 1, (6.5, 4))
    first = u.cells[u.snapshots[0]].cells
    steps_list = sorted({c.nfe for c in first})
    palette = dict(zip(steps_list, ["tab:red", "tab:orange", "tab:green", "tab:blue", "tab:purple", "tab:brown"]))
    x = np.array(u.snapshots)
    for cell in _cell_order(first):
        y = np.array([u.cells[s].cells[cell].fid for s in u.snapshots])
        err = np.array([u.cells[s].cells[cell].fid_std for s in u.snapshots])
        ls, marker = STYLES.get(cell.sampler, ("-", "o"))
        ax.errorbar(x, y, yerr=err, marker=marker, ms=3, capsize=2, color=palette[cell.nfe], ls=ls,
                    label=f"{LABELS.get(cell.sampler, cell.sampler)} {cell.nfe} NFE")
    ax.axvline(u.main_steps, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(s) for s in x])
    ax.set_yscale("log")
    ax.set_xlabel(f"training steps ({u.schedule}; dotted: the main study's models)")
    ax.set_ylabel(f"FID (N = {u.num_images}, log scale)")
    ax.set_title("Every sweep cell along training (colour: NFE; line: sampler)")
    ax.legend(ncol=2, fontsize=7)
    return _save(fig, "undertraining.png")


def gap_summary(u: LongerMetrics, step: int) -> str:
    """Every sampler's paired gap to DDPM at one snapshot, all NFE: "DDIM +29.5 ± 4.7 (10 NFE), ...", with
    ≈ marking the gaps within noise."""
    return ", ".join(f"{LABELS.get(sampler, sampler)} {marked(g[step])} ({nfe} NFE)"
                     for sampler, by_nfe in u.minus_ddpm.items() for nfe, g in sorted(by_nfe.items()))


def undertraining_findings(u: LongerMetrics) -> list[str]:
    lines = []
    first, last = u.snapshots[0], u.snapshots[-1]
    for sampler, by_nfe in u.minus_ddpm.items():
        label = LABELS.get(sampler, sampler)
        for nfe in sorted(by_nfe):
            a, b = by_nfe[nfe][first], by_nfe[nfe][last]
            at = u.overtakes[sampler][nfe]
            trend = "narrows" if abs(b.diff) < abs(a.diff) else "does not narrow"
            c = None if at else crossing(u, sampler, nfe)
            lines.append(f"{label}, {nfe} NFE: FID({label}) − FID(DDPM) is {fmt(a.diff, a.std)} at step {first} and "
                         f"{fmt(b.diff, b.std)} at step {last} (the gap {trend}); "
                         + (f"{label} is ahead beyond noise from step {at} on." if at else
                            f"{label} never gets ahead of DDPM beyond noise within this run"
                            + (f"; a line in log2(steps) through steps {', '.join(map(str, trend_snapshots(u)))} "
                               f"({c['slope']:+.1f} FID per doubling) reaches 0 at about {c['step']:,.0f} training steps "
                               f"(±1 std: {c['low']:,.0f}–{c['high']:,.0f}, snapshots treated as independent)."
                               if c else "; the gap is not narrowing over the last snapshots.")))
    for nfe in sorted(u.ddpm_gain):
        at = plateau(u.ddpm_gain[nfe])
        lines.append(f"DDPM, {nfe} NFE: " + (f"no step after training step {at} improves its FID beyond noise." if at
                                             else f"still improving beyond noise between the last two snapshots "
                                                  f"({fmt(u.ddpm_gain[nfe][u.snapshots[-2]].diff, u.ddpm_gain[nfe][u.snapshots[-2]].std)})."))
    return lines


def variants_table(v: dict[str, Any]) -> pd.DataFrame:
    """FID of each DDIM variant against DDPM per schedule and step count (the committed benchmark)."""
    names = {"ddpm": "DDPM", "ddim": "DDIM η=0 (project)", "eta0.5": "DDIM η=0.5", "eta0_raw_eps": "η=0, raw ε",
             "eta0_unclipped": "η=0, unclipped (DDIM paper code)"}
    rows: dict[tuple[str, int], dict] = {}
    for key, cell in v["cells"].items():
        schedule, steps, variant = key.split("/")
        if variant in names and "fid" in cell:
            rows.setdefault((schedule, int(steps)), {"schedule": schedule, "steps": int(steps)})[names[variant]] = \
                fmt(cell["fid"], cell["fid_std"])
    return pd.DataFrame(list(rows.values()))


# --- cross ---------------------------------------------------------------------------------------
def cross_figure(c: CrossMetrics) -> str:
    settings, names = _cell_order(c.settings), c.schedules
    fig, axes = _subplots(1, len(settings), (3.6 * len(settings), 3.6), squeeze=False)
    for ax, cell in zip(axes[0], settings):
        s = c.settings[cell]
        grid = np.array([[s.fid[a][b] for b in names] for a in names])
        ax.imshow(grid, cmap="viridis_r")
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                ax.text(j, i, f"{grid[i, j]:.0f}\n±{s.fid_std[a][b]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] > grid.mean() else "black",
                        fontweight="bold" if i == j else "normal")
        ax.set_xticks(range(len(names)), names, rotation=45, fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("sampled on")
        ax.set_title(_label(cell), fontsize=10)
    axes[0][0].set_ylabel("trained with")
    fig.suptitle(f"FID (N = {c.num_images}): training schedule x sampling schedule", fontsize=10)
    return _save(fig, "cross.png")


def cross_table(c: CrossMetrics, cell: Cell) -> pd.DataFrame:
    s, names = c.settings[cell], c.schedules
    rows = []
    for a in names:
        row = {"trained with ↓ / sampled on →": a}
        for b in names:
            m = s.minus_own[a][b]
            mark = "" if a == b else f" ({m.diff:+.1f} ± {m.std:.1f})"
            clamp = f" [{s.clamped_steps[a][b]} clamped]" if s.clamped_steps[a][b] else ""
            row[b] = fmt(s.fid[a][b], s.fid_std[a][b]) + mark + clamp
        rows.append(row)
    return pd.DataFrame(rows)


def split_table(c: CrossMetrics) -> pd.DataFrame:
    rows = []
    for cell in _cell_order(c.settings):
        for b in c.schedules[1:]:
            parts = c.settings[cell].split[b]
            rows.append({"setting": _label(cell), "schedule": b,
                         **{f"{p} (vs {c.baseline})": fmt(parts[p].value, parts[p].std) for p in ("total", "training", "sampling")}})
    return pd.DataFrame(rows)


def _part_verdict(part: Part) -> str:
    if abs(part.value) <= NOISE_SIGMAS * part.std:
        return "within noise"
    return "helps" if part.value > 0 else "hurts"


def cross_findings(c: CrossMetrics) -> list[str]:
    lines = []
    for b in c.schedules:
        if b == c.baseline:
            continue
        per = []
        for cell in _cell_order(c.settings):
            p = c.settings[cell].split[b]
            per.append(f"{_label(cell)}: total {fmt(p['total'].value, p['total'].std)}, "
                       f"training {fmt(p['training'].value, p['training'].std)} ({_part_verdict(p['training'])}), "
                       f"sampling {fmt(p['sampling'].value, p['sampling'].std)} ({_part_verdict(p['sampling'])})")
        lines.append(f"**{b}** against {c.baseline} — " + "; ".join(per) + ".")
    return lines


def split_summary(c: CrossMetrics) -> str:
    """How often each part is the larger one, over schedules and settings."""
    training = sampling = 0
    for s in c.settings.values():
        for p in s.split.values():
            if abs(p["sampling"].value) > abs(p["training"].value):
                sampling += 1
            else:
                training += 1
    return (f"Of the {training + sampling} (schedule, setting) splits, the sampling discretisation is the larger part "
            f"in {sampling} and the training noise levels in {training}.")


def clamp_note(c: CrossMetrics) -> str:
    clamped = sorted({f"{a} sampled on {b}" for s in c.settings.values() for a in c.schedules
                      for b in c.schedules if s.clamped_steps[a][b]})
    if not clamped:
        return "No step of any crossed sampler left the trained range of noise levels."
    return ("Steps outside the trained model's range of ᾱ were clamped to its end (marked \"clamped\" in the tables): "
            + ", ".join(clamped) + ".")


# --- seeds ---------------------------------------------------------------------------------------
def seeds_table(sd: SeedsMetrics) -> pd.DataFrame:
    rows = []
    for n in sd.schedules:
        fids = sd.fid[n]
        rows.append({"schedule": n, **{f"seed {s}": fmt(f, e) for s, f, e in zip(sd.seeds, fids, sd.fid_std[n])},
                     "mean ± sd over seeds": fmt(float(np.mean(fids)), float(np.std(fids, ddof=1)) if len(fids) > 1 else float("nan"))})
    return pd.DataFrame(rows)


def pairs_table(sd: SeedsMetrics) -> pd.DataFrame:
    rows = []
    for (a, b), p in sd.pairs.items():
        rows.append({"pair (a − b)": f"{a}-{b}", **{f"seed {s}": fmt(d, e) for s, d, e in zip(sd.seeds, p.diffs, p.stds)},
                     "mean": f"{p.mean:+.2f}", f"{CONFIDENCE:.0%} t-interval half width": f"{p.half_width:.2f}",
                     "separated at seed " + str(sd.seeds[0]): "yes" if p.separated_at_main else "no",
                     "verdict over seeds": p.verdict})
    return pd.DataFrame(rows)


def seeds_findings(sd: SeedsMetrics) -> list[str]:
    lines = []
    for (a, b), p in sd.pairs.items():
        if not p.separated_at_main:
            continue
        better = a if p.diffs[0] < 0 else b
        lines.append(f"{a}-{b}: at seed {sd.seeds[0]} (the main study) {better} is better by "
                     f"{abs(p.diffs[0]):.1f} ± {p.stds[0]:.1f}; over {len(sd.seeds)} training seeds the "
                     f"difference is {', '.join(f'{d:+.1f}' for d in p.diffs)} (mean {p.mean:+.1f}, "
                     f"{CONFIDENCE:.0%} interval ± {p.half_width:.1f}): **{p.verdict}**.")
    return lines or ["No pair is separated beyond noise at the main study's seed."]


# --- the write-up ---------------------------------------------------------------------------------
def write_up(x: Inputs) -> str:
    u, c, sd = x.undertraining, x.cross, x.seeds
    settings = _cell_order(c.settings)
    lines = [
        "# The extended study: DDIM settled, training vs sampling schedule, training seeds",
        "",
        "Generated by `dvc repro extended/dvc.yaml` (stage `extended_report`) from `extended/metrics/seeds.json`, "
        "`undertraining.json`, `cross.json` and the committed `benchmarks/ddim_variants.json`. The main study's "
        "write-up is [`reports/main/README.md`](../main/README.md); models, data, metrics and spreads are the same "
        f"(FID ± delete-a-group jackknife std, \"within noise\" = |Δ| ≤ {NOISE_SIGMAS:g} std of the paired difference).",
        "",
        "## 1. DDIM against DDPM",
        "",
        "**The implementation is right.** diffusers' `DDIMScheduler`, set up on the same respaced process "
        "(`use_clipped_model_output=True`, the re-derived ε this project and improved-diffusion use), reproduces the "
        "project's DDIM samples from the same x_T on a trained model, and DDIM with η = 1 reproduces DDPM "
        "(`tests/test_ddim_diffusers.py`). So the gap is not a bug.",
        "",
        "**Sampler variants** on the main study's models (`benchmarks/ddim_variants.py`, N = "
        f"{x.ddim_variants['num_images']}, same x_T):",
        "",
        markdown(variants_table(x.ddim_variants)),
        "",
        "Clipping x̂₀ with the re-derived ε is the best deterministic variant here; leaving x̂₀ unclipped, as the DDIM "
        "paper's code does, is far worse on these models; adding noise (η > 0) moves DDIM towards DDPM.",
        "",
        f"**Undertraining.** {u.schedule} trained for {u.snapshots[-1]} steps "
        f"({u.snapshots[-1] / u.main_steps:g}× the main study's {u.main_steps}; the run continues the main "
        f"model exactly), its EMA model scored at every snapshot at the sweep's settings (N = {u.num_images}):",
        "",
        f"![every sweep cell along training]({undertraining_figure(u)})",
        "",
        markdown(undertraining_table(u)),
        "",
        "Each sampler against DDPM at the same NFE, FID(sampler) − FID(DDPM), paired (negative: the sampler is better); "
        "\"ahead from\": the first snapshot from which it stays ahead beyond noise:",
        "",
        markdown(gap_table(u)),
        "",
        "DDPM's FID from each snapshot to the next, paired (negative: training longer still helps):",
        "",
        markdown(gain_table(u)),
        "",
        *[f"- {line}" for line in undertraining_findings(u)],
        "",
        "## 2. Training schedule vs sampling schedule",
        "",
        "Each model (rows: trained with) samples on each schedule's noise levels (columns: sampled on): the sampler "
        "runs the column schedule's respaced process and tells the network the real-valued timestep at which its own "
        "training schedule has the same ᾱ (`ddpm_study.crossing`). The diagonal is each model's own process. "
        f"N = {c.num_images}, same x_T everywhere; in brackets, the paired difference to the row's diagonal.",
        "",
        f"![trained with x sampled on]({cross_figure(c)})",
        "",
        *[part for cell in settings for part in (f"**{_label(cell)}**", "", markdown(cross_table(c, cell)), "")],
        f"Each schedule's few-step advantage over {c.baseline} (FID({c.baseline}, {c.baseline}) − "
        "FID(B, B), positive: B better) split into a training part (the training noise levels, averaged over both "
        "sampling grids) and a sampling part (the sampling grid, averaged over both models); the two add up to the "
        "total exactly:",
        "",
        markdown(split_table(c)),
        "",
        *[f"- {line}" for line in cross_findings(c)],
        f"- {split_summary(c)}",
        f"- {clamp_note(c)}",
        "",
        "In the log-SNR view of the main write-up: a schedule's *sampling* part measures where its respaced steps "
        "sit in log-SNR (how many of the few steps fall in the band where the image is decided), its *training* part "
        "how well its model knows those levels — which depends on how often it saw them in training.",
        "",
        "## 3. Training seeds",
        "",
        f"Schedules {', '.join(sd.schedules)} trained with seeds {', '.join(map(str, sd.seeds))} (seed "
        f"{sd.seeds[0]} is the main study's model), each sampled like the main setting ({sd.sampler.upper()}, "
        f"{sd.steps} steps, N = {sd.num_images}) from the *same* noise, so the seeds differ by training alone. "
        "FID ± jackknife std per seed:",
        "",
        markdown(seeds_table(sd)),
        "",
        f"Paired differences per seed, their mean and the {CONFIDENCE:.0%} t interval over seeds (the seeds are the "
        "replication unit: their spread holds training noise and each estimate's sampling noise). A verdict "
        "*survives* when that interval excludes zero, keeps its *direction only* when every seed agrees in sign but "
        "the interval covers zero, and *reverses* when seeds disagree in sign:",
        "",
        markdown(pairs_table(sd)),
        "",
        *[f"- {line}" for line in seeds_findings(sd)],
        "",
        "## Against the literature",
        "",
        "- *Song et al. 2021 (DDIM), table 1: DDIM (η = 0) beats DDPM from 10 to 100 steps on CIFAR-10 and CelebA.* "
        + _literature_ddim(u),
        "- *Karras et al. 2022 treat the training noise distribution and the sampling discretisation as separate "
        "choices.* " + split_summary(c),
        "- *A single training seed is a sample of one.* " + _literature_seeds(sd),
        "",
        "## Reproduce",
        "",
        "`dvc repro extended/dvc.yaml` (after or with the main study; it reuses the main study's models, samples, "
        "sweep noise and reference split). Size it with the `extended` section of `params.yaml`.",
    ]
    return "\n".join(lines) + "\n"


def _literature_ddim(u: LongerMetrics) -> str:
    if "ddim" not in u.overtakes:
        return "Not tested (the sweep lacks DDPM or DDIM)."
    ahead = {k: v for k, v in sorted(u.overtakes["ddim"].items()) if v}
    if not ahead:
        return (f"Here DDIM stays behind DDPM at every NFE through {u.snapshots[-1]} training steps of "
                f"{u.schedule}: training longer alone does not reproduce their ordering at this scale.")
    return ("Here DDIM overtakes DDPM with training at " + ", ".join(f"{k} NFE (from training step {v})"
                                                                      for k, v in ahead.items()) + ".")


def _literature_seeds(sd: SeedsMetrics) -> str:
    separated = {f"{a}-{b}": p for (a, b), p in sd.pairs.items() if p.separated_at_main}
    if not separated:
        return "No pair was separated at the main seed."
    return ("Of the pairs the main study separates, " + ", ".join(f"{k} {p.verdict}" for k, p in separated.items())
            + f" over {len(sd.seeds)} training seeds.")
