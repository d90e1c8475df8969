"""The write-up's tables (pandas), from the typed stage outputs; ``markdown`` renders one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddpm_study import schedules
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import spaced_timesteps
from ddpm_study.samplers import model_calls

from ..outputs import Anchored, Cell, EvaluateMetrics, ScoreTable, SweepMetrics, TrainSummary
from . import findings
from .figures import alphas_cumprod


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4g")


def headline(cfg: StudyConfig, train: dict[str, TrainSummary], evaluate: EvaluateMetrics) -> pd.DataFrame:
    rows = []
    for name in cfg.schedule:
        e, t = evaluate.table.scores[name], train[name]
        rows.append({
            "schedule": name,
            "FID": findings.fmt(e.fid, e.fid_std),
            "KID ×10³": findings.fmt(1e3 * e.kid_mean, 1e3 * e.kid_std),
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
    return pd.DataFrame([{"reference point": label, "FID": findings.fmt(r.fid, r.fid_std),
                          "KID ×10³": findings.fmt(1e3 * r.kid_mean, 1e3 * r.kid_std)} for label, r in rows])


def pairs(table: ScoreTable, names: list[str]) -> pd.DataFrame:
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            p = table.pair(a, b)
            rows.append({"pair": f"{a} − {b}", "ΔFID": findings.fmt_pair(p),
                         "verdict": "within noise" if p.within_noise else ("a better" if p.diff < 0 else "b better")})
    return pd.DataFrame(rows)


def main_guidance(cfg: StudyConfig) -> float:
    """The guidance weight the sweep's findings and figures are read at: the main setting's when the sweep
    has it, else the sweep's first (0 for unconditional models, whose only weight it is)."""
    return cfg.sample.guidance if cfg.sample.guidance in cfg.sweep.guidance else cfg.sweep.guidance[0]


def setting_label(sampler: str, w: float, conditional: bool) -> str:
    """"DDPM"; conditional models: "DDPM, w = 3" (w = -1: unconditional)."""
    return sampler.upper() + (f", w = {w:g}" if conditional else "")


def sweep(cfg: StudyConfig, sweep: SweepMetrics) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """FID ± std per (schedule, sampler, guidance) x steps; the best schedule per cell; and a long CSV form."""
    steps = sorted(cfg.sweep.steps)
    conditional = cfg.model.num_classes > 0
    wide, best, long = [], [], []
    for sampler in cfg.sweep.samplers:
        for w in cfg.sweep.guidance:
            label = setting_label(sampler, w, conditional)
            for name in cfg.schedule:
                row = {"schedule": name, "sampler": label}
                for s in steps:
                    c = sweep.cells[Cell(sampler, s, w)].scores[name]
                    row[f"{s} steps"] = findings.fmt(c.fid, c.fid_std)
                    long.append({"schedule": name, "sampler": sampler, **({"guidance": w} if conditional else {}),
                                 "steps": s, "nfe": model_calls(sampler, s), "fid": c.fid, "fid_std": c.fid_std, "kid_mean": c.kid_mean,
                                 "kid_std": c.kid_std})
                wide.append(row)
            for s in steps:
                cell = sweep.cells[Cell(sampler, s, w)]
                winner = min(cfg.schedule, key=lambda n: cell.scores[n].fid)
                tied = [n for n in cfg.schedule if n != winner and cell.pair(n, winner).within_noise]
                best.append({"sampler": label, "steps": s, "lowest FID": winner,
                             "within noise of it": ", ".join(tied) or "none"})
    return pd.DataFrame(wide), pd.DataFrame(best), pd.DataFrame(long)


def guidance(cfg: StudyConfig, sweep: SweepMetrics, sampler: str, steps: int) -> pd.DataFrame:
    """FID ± std per schedule against the guidance weight, at one sampler and step count."""
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


def spread_ratios(benchmark: dict) -> dict[str, tuple[float, float]]:
    """Range over the benchmark's cases with fewer samples than dimensions (the study's case) of how
    much each estimator overstates the spread over true redraws: {"jackknife": (lo, hi), "bootstrap": ...}."""
    cases = [c for c in benchmark["cases"] if max(c["n_generated"], c["n_reference"]) < c["d"]] or benchmark["cases"]
    return {k: (float(np.min([c[f"{k}_ratio"] for c in cases])), float(np.max([c[f"{k}_ratio"] for c in cases])))
            for k in ("jackknife", "bootstrap")}
