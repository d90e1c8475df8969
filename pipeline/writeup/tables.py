"""The write-up's tables (pandas), from the typed stage outputs; ``markdown`` renders one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddpm_study import schedules
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import spaced_timesteps
from ddpm_study.samplers import steps_within

from .. import outputs
from ..outputs import Anchored, Cell, EvaluateMetrics, Scores, ScoreTable, SweepMetrics, TrainSummary
from . import findings
from .figures import alphas_cumprod


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4g")


def pr_columns(s: Scores) -> dict[str, str]:
    """Precision and recall ± jackknife std, as percentages ("" where a file predates them)."""
    return {label: (findings.fmt(100 * getattr(s, m), 100 * getattr(s, f"{m}_std"), 0) if getattr(s, m) is not None else "")
            for label, m in (("precision %", "precision"), ("recall %", "recall"))}


def inf_column(s: Scores) -> dict[str, str]:
    """FID∞ ± its jackknife std ("" where not computed: the ceilings, files that predate it)."""
    return {"FID∞": findings.fmt(s.fid_inf, s.fid_inf_std) if s.fid_inf is not None else ""}


def headline(cfg: StudyConfig, train: dict[str, TrainSummary], evaluate: EvaluateMetrics) -> pd.DataFrame:
    rows = []
    for name in cfg.schedule:
        e, t = evaluate.table.scores[name], train[name]
        rows.append({
            "schedule": name,
            "FID": findings.fmt(e.fid, e.fid_std),
            **inf_column(e),
            "KID ×10³": findings.fmt(1e3 * e.kid_mean, 1e3 * e.kid_std),
            **pr_columns(e),
            "final loss": t.final_loss,
            "ᾱ_T": t.alpha_bar_T,
            "log-SNR range": f"[{t.log_snr_min:.1f}, {t.log_snr_max:.1f}]",
            "train time (min)": t.train_time_s / 60,
        })
    return pd.DataFrame(rows)


def anchors(scores: Anchored) -> pd.DataFrame:
    """Floor and ceilings at one N, the frame every FID in the same table is read against."""
    rows = [("real vs real (floor)", scores.real_vs_real), ("Gaussian noise", scores.ceilings["gaussian_noise"]),
            ("mean image, repeated", scores.ceilings["mean_image"])]
    return pd.DataFrame([{"reference point": label, "FID": findings.fmt(r.fid, r.fid_std), **inf_column(r),
                          "KID ×10³": findings.fmt(1e3 * r.kid_mean, 1e3 * r.kid_std), **pr_columns(r)}
                         for label, r in rows])


def pairs(table: ScoreTable, names: list[str]) -> pd.DataFrame:
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            p = table.pair(a, b)
            rows.append({"pair": f"{a} − {b}", "ΔFID": findings.fmt_pair(p),
                         **({"ΔFID∞": findings.fmt(p.diff_inf, p.std_inf)} if p.diff_inf is not None else {}),
                         "verdict": verdict(p)})
    return pd.DataFrame(rows)


NOT_RUN = "–"  # a sweep cell the grid leaves out (``SweepConfig.budgets``)


def _budget_columns(cfg: StudyConfig) -> dict[str, str]:
    """One "<n> NFE" column per budget of the sweep, each NOT_RUN until a sampler's row fills it."""
    return {f"{n} NFE": NOT_RUN for n in cfg.sweep.all_budgets}


def main_guidance(cfg: StudyConfig) -> float:
    """The guidance weight the sweep's findings and figures are read at (``outputs.main_guidance``)."""
    return outputs.main_guidance(cfg.sample.guidance, cfg.sweep.guidance)


def setting_label(sampler: str, w: float, conditional: bool) -> str:
    """"DDPM"; conditional models: "DDPM, w = 3" (w = -1: unconditional)."""
    return sampler.upper() + (f", w = {w:g}" if conditional else "")


def sweep(cfg: StudyConfig, sweep: SweepMetrics) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """FID ± std per (schedule, sampler, guidance) x NFE; the best schedule per cell; and a long CSV form."""
    conditional = cfg.model.num_classes > 0
    wide, best, long = [], [], []
    for sampler in cfg.sweep.samplers:
        budgets = cfg.sweep.budgets(sampler)
        for w in cfg.sweep.guidance:
            label = setting_label(sampler, w, conditional)
            for name in cfg.schedule:
                row = {"schedule": name, "sampler": label, **_budget_columns(cfg)}
                for n in budgets:
                    cell = Cell(sampler, n, w)
                    c = sweep.cells[cell].scores[name]
                    row[f"{n} NFE"] = findings.fmt(c.fid, c.fid_std)
                    long.append({"schedule": name, "sampler": sampler, **({"guidance": w} if conditional else {}),
                                 "nfe": n, "steps": cell.steps, "calls": cell.calls, "fid": c.fid, "fid_std": c.fid_std,
                                 "kid_mean": c.kid_mean, "kid_std": c.kid_std, "precision": c.precision,
                                 "precision_std": c.precision_std, "recall": c.recall, "recall_std": c.recall_std,
                                 "fid_inf": c.fid_inf, "fid_inf_std": c.fid_inf_std})
                wide.append(row)
            for n in budgets:
                cell = sweep.cells[Cell(sampler, n, w)]
                winner = min(cfg.schedule, key=lambda x: cell.scores[x].fid)
                tied = [x for x in cfg.schedule if x != winner and cell.pair(x, winner).within_noise]
                best.append({"sampler": label, "NFE": n, "steps": Cell(sampler, n, w).steps, "lowest FID": winner,
                             "within noise of it": ", ".join(tied) or "none"})
    return pd.DataFrame(wide), pd.DataFrame(best), pd.DataFrame(long)


def _per_cell(cfg: StudyConfig, sweep: SweepMetrics, show) -> pd.DataFrame:
    """One row per (schedule, sampler, guidance), one column per NFE budget: ``show(scores)`` of each cell."""
    conditional = cfg.model.num_classes > 0
    rows = []
    for sampler in cfg.sweep.samplers:
        for w in cfg.sweep.guidance:
            for name in cfg.schedule:
                row = {"schedule": name, "sampler": setting_label(sampler, w, conditional), **_budget_columns(cfg)}
                for n in cfg.sweep.budgets(sampler):
                    row[f"{n} NFE"] = show(sweep.cells[Cell(sampler, n, w)].scores[name])
                rows.append(row)
    return pd.DataFrame(rows)


def sweep_precision_recall(cfg: StudyConfig, sweep: SweepMetrics) -> pd.DataFrame:
    """Precision / recall (%) per (schedule, sampler, guidance) x NFE."""
    return _per_cell(cfg, sweep, lambda c: f"{100 * c.precision:.0f} / {100 * c.recall:.0f}" if c.precision is not None else "")


def sweep_infinity(cfg: StudyConfig, sweep: SweepMetrics) -> pd.DataFrame:
    """FID∞ ± std per (schedule, sampler, guidance) x NFE: the sweep on the main setting's scale."""
    return _per_cell(cfg, sweep, lambda c: inf_column(c)["FID∞"])


def bits_per_dim(cfg: StudyConfig, lk: outputs.LikelihoodMetrics) -> pd.DataFrame:
    return pd.DataFrame([{"schedule": n, "bits/dim": f"{lk.schedules[n].bpd:.3f} ± {lk.schedules[n].bpd_std:.3f}",
                          "prior term L_T": f"{lk.schedules[n].prior:.2g}"} for n in cfg.schedule])


def verdict(p: outputs.Pair) -> str:
    return "within noise" if p.within_noise else ("a better" if p.diff < 0 else "b better")


def likelihood_pairs(lk: outputs.LikelihoodMetrics) -> pd.DataFrame:
    """Paired differences of bits/dim (a − b) over the same test images."""
    return pd.DataFrame([{"pair": f"{a} − {b}", "Δ bits/dim": findings.fmt(p.diff, p.std, 3), "verdict": verdict(p)}
                         for (a, b), p in lk.pairs.items()])


def versus_baseline(cfg: StudyConfig, sweep: SweepMetrics) -> pd.DataFrame:
    """ΔFID of every cell against the baseline cell, per schedule, with its paired verdict ("≈": within noise)."""
    rows = []
    for sampler in cfg.sweep.samplers:
        for name in cfg.schedule:
            pairs = sweep.versus_baseline[name]
            row = {"schedule": name, "sampler": sampler.upper(), **_budget_columns(cfg)}
            for n in cfg.sweep.budgets(sampler):
                cell = Cell(sampler, n, sweep.baseline.guidance)
                p = pairs[cell]
                row[f"{n} NFE"] = ("baseline" if cell == sweep.baseline else
                                   findings.marked(p))
            rows.append(row)
    return pd.DataFrame(rows)


def guidance(cfg: StudyConfig, sweep: SweepMetrics, sampler: str, steps: int) -> pd.DataFrame:
    """FID ± std per schedule against the guidance weight, at one sampler and NFE (``steps``)."""
    return pd.DataFrame([{"schedule": name, **{f"w = {w:g}": findings.fmt(c.fid, c.fid_std)
                                               for w in cfg.sweep.guidance
                                               for c in [sweep.cells[Cell(sampler, steps, w)].scores[name]]}}
                         for name in cfg.schedule])


def per_class(cfg: StudyConfig, evaluate: EvaluateMetrics) -> pd.DataFrame:
    """FID against the whole split beside the mean intra-class FID (each class's samples against the split's
    images of that class), with the real-vs-real floor of both."""
    pc = evaluate.per_class
    names = pc.names
    rows = [{"schedule": name, "FID (all classes)": findings.fmt(evaluate.table.scores[name].fid,
                                                                 evaluate.table.scores[name].fid_std),
             "mean per-class FID": f"{pc.mean(name):.1f}",
             **{names[c]: f"{pc.fid[name][c]:.0f}" for c in pc.scored()}} for name in cfg.schedule]
    rows.append({"schedule": "real vs real (floor)", "FID (all classes)": findings.fmt(evaluate.real_vs_real.fid,
                                                                                     evaluate.real_vs_real.fid_std),
                 "mean per-class FID": f"{pc.floor_mean:.1f}", **{names[c]: f"{pc.floor[c]:.0f}" for c in pc.scored()}})
    return pd.DataFrame(rows)


def snr(cfg: StudyConfig) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Fractions of all T steps, and of the fewest-step sampler's steps, in each SNR band."""
    fewest = min(steps_within(x, n) for x in cfg.sweep.samplers for n in cfg.sweep.budgets(x))
    rows, fractions = [], {}
    for name in schedules.SCHEDULES:
        ac = alphas_cumprod(cfg, name)
        f = fractions[name] = findings.snr_fractions(ac)
        few = findings.snr_fractions(ac[spaced_timesteps(cfg.diffusion.timesteps, fewest)])
        rows.append({"schedule": name, "high SNR (> 10)": f"{f['high']:.0%}", "medium": f"{f['medium']:.0%}",
                     "low SNR (< 0.1)": f"{f['low']:.0%}", "nearly noise (SNR < 0.01)": f"{f['near_noise']:.0%}",
                     f"high / medium / low of the {fewest} respaced steps": f"{few['high']:.0%} / {few['medium']:.0%} / {few['low']:.0%}"})
    return pd.DataFrame(rows), fractions


def spread_ratios(benchmark: dict) -> dict[str, tuple[float, float]]:
    """Range over the benchmark's cases with fewer samples than dimensions (the study's case) of how
    much each estimator overstates the spread over true redraws: {"jackknife": (lo, hi), "bootstrap": ...}."""
    cases = [c for c in benchmark["cases"] if max(c["n_generated"], c["n_reference"]) < c["d"]] or benchmark["cases"]
    return {k: (float(np.min([c[f"{k}_ratio"] for c in cases])), float(np.max([c[f"{k}_ratio"] for c in cases])))
            for k in ("jackknife", "bootstrap")}
