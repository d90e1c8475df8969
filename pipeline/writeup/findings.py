"""The write-up's conclusions, derived from the metric files only (never typed by hand).

Each function takes the typed metric files (``outputs``) and returns sentences; a verdict such as
"within noise" always comes from a paired jackknife difference (``uncertainty.compare``), so the
text can only claim what the numbers support.
"""

from __future__ import annotations

import numpy as np

from ddpm_study import schedules
from ddpm_study.uncertainty import NOISE_SIGMAS

from ddpm_study.config import StudyConfig

from ..outputs import Anchored, Cell, EvaluateMetrics, Pair, ScoreTable, SweepMetrics

# log-SNR bands: above +2.3 (SNR > 10) the image dominates x_t, below -2.3 (SNR < 0.1) the noise
# does; in between the model must decide what the image is. Symmetric in SNR, one decade each side.
HIGH_SNR, LOW_SNR = np.log(10.0), -np.log(10.0)
# "Nearly pure noise": SNR < 0.01, i.e. the signal's amplitude sqrt(alpha_bar) is under a tenth
# of the noise's; the tail Nichol & Dhariwal call wasted.
NEAR_NOISE = np.log(0.01)


def fmt(mean: float, std: float, digits: int = 1) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_pair(p: Pair, sign: str = "") -> str:
    return f"{sign}{fmt(p.diff, p.std)}"


def ranking(table: ScoreTable, names: list[str]) -> str:
    """'cosine wins (FID x ± s); linear is within noise of it (+d ± s); sigmoid is worse by d ± s.'"""
    scores = table.scores
    ordered = sorted(names, key=lambda n: scores[n].fid)
    best = ordered[0]
    if len(names) == 1:
        return f"FID of {best}: {fmt(scores[best].fid, scores[best].fid_std)} (a single schedule: nothing to rank)."
    parts = [f"**{best}** has the lowest FID ({fmt(scores[best].fid, scores[best].fid_std)})"]
    tied = [n for n in ordered[1:] if table.pair(n, best).within_noise]
    worse = [n for n in ordered[1:] if n not in tied]
    if tied:
        parts.append(", ".join(f"{n} ({fmt_pair(table.pair(n, best), '+')})" for n in tied)
                     + (" is" if len(tied) == 1 else " are") + " within noise of it")
    if worse:
        parts.append(", ".join(f"{n} ({fmt_pair(table.pair(n, best), '+')})" for n in worse)
                     + (" is" if len(worse) == 1 else " are") + " worse beyond noise")
    if not worse:
        parts.append("so this setting does not separate the schedules")
    return "; ".join(parts) + "."


def sampler_text(cfg: StudyConfig) -> str:
    """The main setting's sampler as the write-up names it: 'DDPM', 'DDIM (eta 0.5)', '..., guidance w = 1'."""
    s = cfg.sample
    return (s.sampler.upper() + (f" (eta {s.eta})" if s.sampler == "ddim" else "")
            + (f", guidance w = {s.guidance:g}" if cfg.model.num_classes > 0 else ""))


def main_setting(cfg: StudyConfig, evaluate: EvaluateMetrics) -> str:
    """The study's answer: the schedules ranked at the main setting, with their paired verdicts."""
    return (f"**At the study's main setting** ({sampler_text(cfg)}, {cfg.sample.steps} respaced steps, "
            f"N = {evaluate.num_images}): " + ranking(evaluate.table, list(cfg.schedule)))


def answer(cfg: StudyConfig, evaluate: EvaluateMetrics) -> list[str]:
    """The README's answer block (``ddpm-study readme``): the main-setting ranking and where it sits."""
    names = list(cfg.schedule)
    return [f"- {main_setting(cfg, evaluate)}",
            f"- {placement(evaluate, evaluate.table, names)} Differences between schedules are to be read against that span."]


def few_vs_many_steps(sweep: SweepMetrics, sampler: str, steps: list[int], a: str = "linear",
                      b: str = "cosine", w: float = 0.0) -> tuple[Pair, Pair]:
    """Advantage of ``b`` over ``a`` (FID(a) - FID(b), paired) at the fewest and at the most steps."""
    few, many = (sweep.cells[Cell(sampler, s, w)] for s in (min(steps), max(steps)))
    return few.pair(a, b), many.pair(a, b)


def nichol_dhariwal_shortening(sweep: SweepMetrics, samplers: list[str], steps: list[int], names: list[str],
                               w: float = 0.0) -> list[str]:
    """The expectation drawn from Nichol & Dhariwal (2021): cosine helps mainly when the reverse process is shortened."""
    if not {"linear", "cosine"} <= set(names) or len(steps) < 2:
        return ["Needs linear and cosine and at least two step counts in the sweep; not checked in this run."]
    lines = []
    for sampler in samplers:
        few, many = few_vs_many_steps(sweep, sampler, steps, w=w)
        few_s, many_s = fmt_pair(few), fmt_pair(many)
        if few.within_noise:
            verdict = "we do **not** see it: at the fewest steps the two are within noise"
        elif few.diff < 0:
            verdict = "our numbers **disagree**: linear is better than cosine beyond noise at the fewest steps"
        elif few.diff > many.diff + NOISE_SIGMAS * np.hypot(few.std, many.std):
            verdict = "our numbers **agree**: cosine's lead is beyond noise at the fewest steps and shrinks with more steps"
        else:
            verdict = ("cosine leads beyond noise at the fewest steps, but its lead does **not** shrink beyond noise "
                       "with more steps, so only half of the claim is supported")
        lines.append(f"{sampler.upper()}: FID(linear) − FID(cosine) = {few_s} at {min(steps)} steps and {many_s} at "
                     f"{max(steps)} steps — {verdict}.")
    return lines


def snr_fractions(alphas_cumprod: np.ndarray) -> dict[str, float]:
    """Fractions of timesteps at high, medium and low SNR and in the nearly-pure-noise tail."""
    lam = schedules.log_snr(alphas_cumprod)
    return {
        "high": float(np.mean(lam > HIGH_SNR)),
        "medium": float(np.mean((lam <= HIGH_SNR) & (lam >= LOW_SNR))),
        "low": float(np.mean(lam < LOW_SNR)),
        "near_noise": float(np.mean(lam < NEAR_NOISE)),
    }


def wasted_tail(fractions: dict[str, dict[str, float]]) -> str:
    """Nichol & Dhariwal (2021): the end of the linear schedule is wasted (x_t is already noise)."""
    if not {"linear", "cosine"} <= set(fractions):
        return "Needs linear and cosine; not checked."
    lin, cos = fractions["linear"]["near_noise"], fractions["cosine"]["near_noise"]
    verdict = "agrees" if lin > cos else "does **not** agree"
    return (f"{lin:.0%} of the linear schedule's steps have SNR < 0.01 (the signal's amplitude under a tenth of the "
            f"noise's), against {cos:.0%} for cosine; this {verdict} with their observation that the end of the "
            f"linear schedule adds little (they could skip about the last 20% of its reverse steps without "
            f"much FID loss). Its low-SNR share is {fractions['linear']['low']:.0%} against "
            f"{fractions['cosine']['low']:.0%}.")


def placement(anchors: Anchored, table: ScoreTable, names: list[str]) -> str:
    """Where the schedules sit between the real-vs-real floor and the better trivial generator."""
    floor = anchors.real_vs_real.fid
    ceiling_name, ceiling = min(anchors.ceilings.items(), key=lambda kv: kv[1].fid)
    share = {n: (table.scores[n].fid - floor) / (ceiling.fid - floor) for n in names}
    label = ceiling_name.replace("_", " ")
    return (f"On the scale from the real-vs-real floor (FID {floor:.1f}, 0%) to the better trivial generator "
            f"({label}, FID {ceiling.fid:.1f}, 100%) the schedules sit at "
            + ", ".join(f"{n} {share[n]:.0%}" for n in sorted(names, key=share.get)) + ".")


def sampler_gap(sweep: SweepMetrics, names: list[str], steps: list[int], w: float = 0.0) -> str:
    """FID(DDIM) - FID(DDPM) over every schedule and step count (same x_T; not paired by the jackknife)."""
    gaps = [sweep.cells[Cell("ddim", s, w)].scores[n].fid - sweep.cells[Cell("ddpm", s, w)].scores[n].fid
            for n in names for s in steps]
    if all(g > 0 for g in gaps):
        verdict = "DDPM is better than DDIM at every schedule and step count"
    elif all(g < 0 for g in gaps):
        verdict = "DDIM is better than DDPM at every schedule and step count"
    else:
        verdict = "neither sampler is better everywhere"
    return f"FID(DDIM) − FID(DDPM) ranges from {min(gaps):+.1f} to {max(gaps):+.1f}: {verdict}."


def guidance_rankings(sweep: SweepMetrics, sampler: str, steps: int, weights: list[float], names: list[str]) -> list[str]:
    """The schedule ranking at each guidance weight (w = -1: the conditional model sampled unconditionally),
    then whether guidance reorders the schedules beyond noise."""
    lines = [f"w = {w:g}{' (unconditional)' if w == -1 else ' (conditional, unguided)' if w == 0 else ''}: "
             + ranking(sweep.cells[Cell(sampler, steps, w)], names) for w in weights]
    if len(weights) > 1 and len(names) > 1:
        # A pair is "reordered" when it is separated beyond noise at one weight and in the opposite order
        # beyond noise at another: an order that only changes within noise is not a finding.
        flips = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
                 if {np.sign(p.diff) for w in weights for p in [sweep.cells[Cell(sampler, steps, w)].pair(a, b)]
                     if not p.within_noise} == {-1.0, 1.0}]
        lines.append("Guidance reorders " + ", ".join(f"{a} and {b}" for a, b in flips) + " beyond noise." if flips
                     else "No pair of schedules is separated in opposite orders beyond noise at two weights: guidance "
                          "changes how good the samples are, not which schedule is better beyond noise.")
    return lines
