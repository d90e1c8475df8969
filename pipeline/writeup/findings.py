"""The write-up's conclusions, derived from the metric files only (never typed by hand).

Each function takes the typed metric files (``outputs``) and returns sentences; a verdict such as
"within noise" always comes from a paired jackknife difference (``uncertainty.compare``), so the
text can only claim what the numbers support.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from ddpm_study import schedules
from ddpm_study.uncertainty import NOISE_SIGMAS

from ddpm_study.config import StudyConfig

if TYPE_CHECKING:
    from ..baseline import Baseline
from ..outputs import Anchored, Cell, EvaluateMetrics, LikelihoodMetrics, Pair, Scores, ScoreTable, SweepMetrics

# log-SNR bands: above +2.3 (SNR > 10) the image dominates x_t, below -2.3 (SNR < 0.1) the noise
# does; in between the model must decide what the image is. Symmetric in SNR, one decade each side.
HIGH_SNR, LOW_SNR = np.log(10.0), -np.log(10.0)
# "Nearly pure noise": SNR < 0.01, i.e. the signal's amplitude sqrt(alpha_bar) is under a tenth
# of the noise's; the tail Nichol & Dhariwal call wasted.
NEAR_NOISE = np.log(0.01)


def fmt(mean: float, std: float, digits: int = 1) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_pair(p: Pair, sign: str = "", digits: int = 1) -> str:
    return f"{sign}{fmt(p.diff, p.std, digits)}"


def signed(p: Pair, digits: int = 1) -> str:
    """"+1.5 ± 1.0" or "-0.5 ± 1.0"."""
    return fmt_pair(p, "+" if p.diff >= 0 else "", digits)


def marked(p: Pair, digits: int = 1) -> str:
    """``signed``, with "≈" when the difference is within noise."""
    return signed(p, digits) + (" ≈" if p.within_noise else "")


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


def infinity_ranking(table: ScoreTable, names: list[str], floor: Scores, spread: bool = True) -> str:
    """The schedules ranked by FID∞ with paired differences of FID∞, read against the floor's FID∞ (0 for two
    samples of one distribution: how far the extrapolation is from bias-free at this N); ``spread``: and what the
    extrapolation costs in spread against FID's."""
    scores = table.scores
    if any(scores[n].fid_inf is None for n in names) or floor.fid_inf is None:
        return "FID∞ was not computed for this run."
    ordered = sorted(names, key=lambda n: scores[n].fid_inf)
    best = ordered[0]
    head = f"**{best}** has the lowest FID∞ ({fmt(scores[best].fid_inf, scores[best].fid_inf_std)})"
    rest = [f"{n} {fmt(table.pair(n, best).diff_inf, table.pair(n, best).std_inf)} higher"
            + (" (beyond noise)" if abs(table.pair(n, best).diff_inf) > NOISE_SIGMAS * table.pair(n, best).std_inf
               else " (within noise)") for n in ordered[1:]]
    text = (head + ("; " + ", ".join(rest) if rest else "") + f". Real vs real: FID∞ {fmt(floor.fid_inf, floor.fid_inf_std)}"
            f" (0 is bias-free) against FID {floor.fid:.1f}.")
    if spread:
        text += (" The extrapolation removes most of FID's small-N bias but costs spread: FID∞'s stds are "
                 f"{min(scores[n].fid_inf_std for n in names) / max(scores[n].fid_std for n in names):.1f}–"
                 f"{max(scores[n].fid_inf_std for n in names) / min(scores[n].fid_std for n in names):.1f}× FID's.")
    return text


def bits_per_dim(lk: LikelihoodMetrics, names: list[str]) -> str:
    """The bound per schedule, ranked, with paired differences over the test images."""
    ordered = sorted(names, key=lambda n: lk.schedules[n].bpd)
    best = ordered[0]
    rest = [f"{n} +{fmt(lk.pair(n, best).diff, lk.pair(n, best).std, 3)}" + (" (within noise)" if lk.pair(n, best).within_noise else "")
            for n in ordered[1:]]
    return (f"**Bits/dim** (the variational bound on {lk.images} {lk.split} images, lower is better): **{best}** "
            f"{lk.schedules[best].bpd:.3f} ± {lk.schedules[best].bpd_std:.3f}" + ("; " + ", ".join(rest) if rest else "")
            + " (paired over images).")


def nichol_dhariwal_likelihood(lk: LikelihoodMetrics, names: list[str]) -> str:
    """Their headline: cosine lowers the NLL against linear. The direction is comparable across data sets; values are not."""
    if not {"linear", "cosine"} <= set(names):
        return "Needs linear and cosine; not checked in this run."
    p = lk.pair("cosine", "linear")
    verdict = ("agrees: cosine's bound is lower beyond noise" if p.diff < 0 and not p.within_noise else
               "does not reproduce it: cosine's bound is higher beyond noise" if not p.within_noise else
               "cannot tell: the difference is within noise")
    return (f"Nichol & Dhariwal's schedule ablation (CIFAR-10, T = 4000) finds a lower NLL with the cosine schedule "
            f"than with the linear one; Ho et al. report ≤ 3.75 bits/dim for L_simple at T = 1000 (CIFAR-10). Here "
            f"cosine − linear = {fmt(p.diff, p.std, 3)} bits/dim: this study {verdict}. The values "
            f"are not comparable across data sets ({lk.split} images of another data set, 28×28 grey, a small "
            "U-Net trained with L_simple briefly); the direction is.")


def unpaired(a_mean: float, a_std: float, b_mean: float, b_std: float) -> Pair:
    """B − A for two independent estimates (another run, another setting): the stds in quadrature, the study's
    noise rule."""
    d, std = b_mean - a_mean, float(np.hypot(a_std, b_std))
    return Pair(diff=d, std=std, within_noise=bool(abs(d) <= NOISE_SIGMAS * std))


# |FID here - FID committed| below which the run's samples are taken for the baseline's: the last digits that another
# CPU model or library version moves (measured across two AMD EPYC families: 0); beyond it the models differ (e.g.
# trained in fp32 where the CPU lacks native bf16, the fallback of `train.precision: bf16`).
SAME_SAMPLES_FID = 1e-3


def against_baseline(names: list[str], evaluate: EvaluateMetrics, baseline: Optional["Baseline"],
                     differs: list[str], likelihood: Optional[LikelihoodMetrics] = None,
                     sweep: Optional[SweepMetrics] = None) -> str:
    """This run's schedules placed in the committed study's ranking (``pipeline.baseline``): with the same settings
    but ``schedule`` the run reproduces the baseline's models and samples, so the baseline's paired verdicts hold
    for it, on FID, FID∞, bits/dim and every sweep cell; with other settings, or where the scores show other
    models, only an unpaired difference of FIDs is defined."""
    if baseline is None:
        return "No committed baseline to compare with (not a git checkout, or HEAD has no readable metrics/evaluate.json)."
    base = baseline.evaluate.table
    shared = [n for n in names if n in base.scores]
    if not shared:
        return f"The committed baseline scored none of {', '.join(names)}: nothing to compare with."
    parts = []
    for name in shared:
        here, there = evaluate.table.scores[name], base.scores[name]
        same_samples = not differs and abs(here.fid - there.fid) <= SAME_SAMPLES_FID
        if same_samples:
            same = ("the same number" if abs(here.fid - there.fid) < 1e-9 else
                    f"a difference of {here.fid - there.fid:+.2g} (another CPU model or library version moves the last digits)")
            others = [b for b in base.scores if b != name]
            parts.append(f"{name}: FID {fmt(here.fid, here.fid_std)} here, {fmt(there.fid, there.fid_std)} in the "
                         f"committed study ({same}). The settings are the baseline's but for `schedule`, so the samples "
                         f"are the baseline's and its paired differences place {name}: FID({name}) − FID(b) = "
                         + ", ".join(f"{b} {marked(base.pair(name, b))}" for b in others) + " (≈: within noise).")
            if there.fid_inf is not None and all(base.pair(name, b).diff_inf is not None for b in others):
                inf = {b: base.pair(name, b) for b in others}
                parts.append(f"FID∞({name}) − FID∞(b) = " + ", ".join(
                    f"{b} {marked(Pair(p.diff_inf, p.std_inf, abs(p.diff_inf) <= NOISE_SIGMAS * p.std_inf))}"
                    for b, p in inf.items()) + ".")
            lk = baseline.likelihood
            if lk is not None and likelihood is not None and name in lk.schedules and name in likelihood.schedules:
                parts.append(f"Bits/dim {likelihood.schedules[name].bpd:.3f} here, {lk.schedules[name].bpd:.3f} committed; "
                             f"bits/dim({name}) − bits/dim(b) = " + ", ".join(
                                 f"{b} {marked(lk.pair(name, b), 3)}" for b in lk.schedules if b != name) + ".")
            committed_sweep = baseline.sweep
            if committed_sweep is not None and sweep is not None:
                cells = [c for c in sweep.cells if c in committed_sweep.cells and name in committed_sweep.cells[c].scores]
                counts = []
                for b in others:
                    pairs = [committed_sweep.cells[c].pair(name, b) for c in cells if b in committed_sweep.cells[c].scores]
                    ahead = sum(p.diff < 0 and not p.within_noise for p in pairs)
                    behind = sum(p.diff > 0 and not p.within_noise for p in pairs)
                    counts.append(f"{b}: ahead in {ahead}, tied in {len(pairs) - ahead - behind}, behind in {behind}")
                if cells:
                    parts.append(f"In the committed sweep's {len(cells)} cells (N = {committed_sweep.num_images}) the paired "
                                 f"verdicts put {name} against " + "; ".join(counts) + ".")
        else:
            d = unpaired(there.fid, there.fid_std, here.fid, here.fid_std)
            why = (f"this run changes {', '.join(f'`{k}`' for k in differs)}" if differs else
                   "the same settings but other models: FID differs by more than the last digits, as when a CPU "
                   "without native bf16 trains the `train.precision: bf16` models in fp32")
            parts.append(f"{name}: FID {fmt(here.fid, here.fid_std)} here against {fmt(there.fid, there.fid_std)} in "
                         f"the committed study, unpaired ({why}): "
                         f"{fmt(d.diff, d.std)}" + (", within noise." if d.within_noise else ", beyond noise."))
    return f"**Against the committed baseline** (git HEAD's metrics, {len(base.scores)} schedules): " + " ".join(parts)


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
            f"- Free of N (FID∞): {infinity_ranking(evaluate.table, names, evaluate.real_vs_real, spread=False)}",
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
        return ["Needs linear and cosine and at least two NFE budgets in the sweep; not checked in this run."]
    lines = []
    for sampler in samplers:
        own = sorted(c.nfe for c in sweep.cells if c.sampler == sampler and c.guidance == w)  # DDPM's has the baseline
        few, many = few_vs_many_steps(sweep, sampler, own, w=w)
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
        lines.append(f"{sampler.upper()}: FID(linear) − FID(cosine) = {few_s} at {min(own)} NFE and {many_s} at "
                     f"{max(own)} NFE — {verdict}.")
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


def precision_recall_summary(evaluate: EvaluateMetrics, names: list[str]) -> str:
    """Fidelity against diversity at the main setting: each schedule's precision and recall beside the floor's."""
    sc, floor = evaluate.table.scores, evaluate.real_vs_real
    pct = lambda x, sd: f"{100 * x:.0f} ± {100 * sd:.0f}%"  # noqa: E731
    by_recall = sorted(names, key=lambda n: -sc[n].recall)
    return ("**Precision / recall** at the main setting (fidelity / diversity, Inception features, k = 3): "
            + ", ".join(f"{n} {pct(sc[n].precision, sc[n].precision_std)} / {pct(sc[n].recall, sc[n].recall_std)}"
                        for n in by_recall)
            + f"; real vs real {pct(floor.precision, floor.precision_std)} / {pct(floor.recall, floor.recall_std)}.")


def placement(anchors: Anchored, table: ScoreTable, names: list[str]) -> str:
    """Where the schedules sit between the real-vs-real floor and the better trivial generator."""
    floor = anchors.real_vs_real.fid
    ceiling_name, ceiling = min(anchors.ceilings.items(), key=lambda kv: kv[1].fid)
    share = {n: (table.scores[n].fid - floor) / (ceiling.fid - floor) for n in names}
    label = ceiling_name.replace("_", " ")
    return (f"On the scale from the real-vs-real floor (FID {floor:.1f}, 0%) to the better trivial generator "
            f"({label}, FID {ceiling.fid:.1f}, 100%) the schedules sit at "
            + ", ".join(f"{n} {share[n]:.0%}" for n in sorted(names, key=share.get)) + ".")


def sampler_gap(sweep: SweepMetrics, names: list[str], budgets: list[int], other: str = "ddim", w: float = 0.0) -> str:
    """FID(other) - FID(DDPM) over every schedule and NFE (same x_T; not paired by the jackknife)."""
    gaps = [fid_gap(sweep, Cell(other, n, w), Cell("ddpm", n, w), x) for x in names for n in budgets]
    o = other.upper()
    if all(g > 0 for g in gaps):
        verdict = f"DDPM is better than {o} at every schedule and NFE"
    elif all(g < 0 for g in gaps):
        verdict = f"{o} is better than DDPM at every schedule and NFE"
    else:
        verdict = "neither sampler is better everywhere"
    return f"FID({o}) − FID(DDPM) ranges from {min(gaps):+.1f} to {max(gaps):+.1f}: {verdict}."


def matches_baseline(p: Pair) -> bool:
    """A cell matches the baseline when it is within noise of it or better."""
    return p.within_noise or p.diff < 0


def cheapest_match(sweep: SweepMetrics, names: list[str], samplers: list[str]) -> str:
    """Per schedule, the cheapest cell (fewest network calls) that matches the baseline (DDPM at the most NFE),
    paired over the shared x_T; and whether any cell of ``samplers`` (the deterministic ones) does."""
    base = sweep.baseline
    label = f"DDPM at {base.nfe} NFE"
    parts, closest = [], []
    for name in names:
        pairs = {c: p for c, p in sweep.versus_baseline[name].items() if c != base}
        ok = sorted((c for c, p in pairs.items() if matches_baseline(p)), key=lambda c: (c.calls, c.sampler))
        parts.append(f"{name}: " + (f"{ok[0].sampler.upper()} at {ok[0].calls} NFE ({signed(pairs[ok[0]])})"
                                    if ok else "none"))
        det = {c: p for c, p in pairs.items() if c.sampler in samplers}
        if det:
            best = min(det, key=lambda c: det[c].diff)
            closest.append(f"{name} {best.sampler.upper()} at {best.calls} NFE, {signed(det[best])}")
    text = (f"**The cheapest setting that matches {label}** (within noise or better, paired over the shared x_T): "
            + "; ".join(parts) + ".")
    if closest:
        any_det = any(matches_baseline(p) for name in names for c, p in sweep.versus_baseline[name].items()
                      if c.sampler in samplers)
        text += (f" Of the deterministic samplers ({', '.join(x.upper() for x in samplers)}), "
                 + ("some match it" if any_det else "none matches it at any NFE")
                 + "; the closest per schedule: " + "; ".join(closest) + ".")
    return text


def ranking_by_sampler(sweep: SweepMetrics, names: list[str], samplers: list[str], budgets: list[int],
                       w: float = 0.0) -> str:
    """Whether the sampler reorders the schedules: a pair separated beyond noise in opposite orders by two
    samplers at the same NFE. An order that only changes within noise is not a finding."""
    if len(names) < 2 or len(samplers) < 2:
        return "One schedule or one sampler: nothing to reorder."
    flips = [(a, b, n) for n in budgets for i, a in enumerate(names) for b in names[i + 1:]
             if {np.sign(p.diff) for x in samplers for p in [sweep.cells[Cell(x, n, w)].pair(a, b)]
                 if not p.within_noise} == {-1.0, 1.0}]
    if flips:
        return ("**The sampler changes the ranking**: " + "; ".join(f"{a} and {b} at {n} NFE" for a, b, n in flips)
                + " are separated beyond noise in opposite orders by two samplers.")
    return ("**The sampler does not reorder the schedules beyond noise**: at no NFE do two samplers separate a pair "
            "of schedules in opposite orders (the lowest FID per cell: the table above).")


# Published CIFAR-10 FIDs the sweep is read against (50k samples): Song et al. 2021 (DDIM), table 1, S = 10
# steps, eta = 0 (DDIM) and eta = 1 (= DDPM with the posterior variance, this study's DDPM); Lu et al. 2022a
# (DPM-Solver), ScoreSDE's VP model, at 10 and 20 NFE.
DDIM_TABLE1_S10 = {"ddim": 13.36, "ddpm": 41.07}
DPM_SOLVER_CIFAR = {10: 4.70, 20: 2.87}


def fid_gap(sweep: SweepMetrics, a: Cell, b: Cell, name: str) -> float:
    """FID(a) - FID(b) of one schedule (same x_T; not paired by the jackknife)."""
    return sweep.cells[a].scores[name].fid - sweep.cells[b].scores[name].fid


def literature_samplers(sweep: SweepMetrics, names: list[str], samplers: list[str], w: float = 0.0) -> list[str]:
    """Our few-NFE sampler ordering against DDIM's table 1 and DPM-Solver's CIFAR-10 results."""
    lines = []
    if {"ddpm", "ddim"} <= set(samplers) and Cell("ddim", 10, w) in sweep.cells:
        gaps = [fid_gap(sweep, Cell("ddim", 10, w), Cell("ddpm", 10, w), x) for x in names]
        lit = DDIM_TABLE1_S10["ddim"] - DDIM_TABLE1_S10["ddpm"]
        verdict = ("**agree**: DDIM is ahead" if all(g < 0 for g in gaps) else
                   "**disagree**: DDPM is ahead at every schedule" if all(g > 0 for g in gaps) else "are mixed")
        lines.append(f"DDIM (Song et al. 2021, table 1, CIFAR-10, 10 steps): η = 0 {DDIM_TABLE1_S10['ddim']} against "
                     f"η = 1 (DDPM) {DDIM_TABLE1_S10['ddpm']}, a gap of {lit:+.1f}; here FID(DDIM) − FID(DDPM) at 10 NFE "
                     f"is {min(gaps):+.1f} to {max(gaps):+.1f} over the schedules — our numbers {verdict}.")
    if {"ddim", "dpmpp2m"} <= set(samplers) and all(Cell("dpmpp2m", n, w) in sweep.cells for n in DPM_SOLVER_CIFAR):
        gaps = {n: [fid_gap(sweep, Cell("dpmpp2m", n, w), Cell("ddim", n, w), x) for x in names] for n in DPM_SOLVER_CIFAR}
        lines.append("DPM-Solver (Lu et al. 2022a, CIFAR-10, ScoreSDE VP model): "
                     + ", ".join(f"{v} at {n} NFE" for n, v in DPM_SOLVER_CIFAR.items())
                     + f", against DDIM's {DDIM_TABLE1_S10['ddim']} at 10 steps (another model): the second-order "
                     "multistep solver far ahead of DDIM at equal NFE; here FID(DPMPP2M) − FID(DDIM) is "
                     + " and ".join(f"{min(g):+.1f} to {max(g):+.1f} at {n} NFE" for n, g in gaps.items())
                     + (" — the second-order solver's lead is small or absent here." if max(max(g) for g in gaps.values())
                        > -5 else " — the second-order solver leads here too."))
    return lines


def guidance_precision_recall(sweep: SweepMetrics, sampler: str, steps: int, weights: list[float],
                              names: list[str]) -> str:
    """Fidelity against diversity under guidance, checked against the known answer (Ho & Salimans 2021, fig. 1-2:
    a larger weight raises precision and lowers recall): each schedule's precision and recall from the unguided
    conditional model (w = 0, else the smallest weight) to the largest weight. The two cells are scored on
    separate jackknifes, so a change's std is the unpaired one, sqrt(std_a² + std_b²)."""
    low, high = (0.0 if 0.0 in weights else min(weights)), max(weights)
    at = {w: sweep.cells[Cell(sampler, steps, w)].scores for w in (low, high)}
    if low == high or any(at[w][n].precision is None for w in (low, high) for n in names):
        return ""

    def change(name: str, metric: str) -> tuple[float, float]:
        a, b = at[low][name], at[high][name]
        return (100 * (getattr(b, metric) - getattr(a, metric)),
                100 * float(np.hypot(getattr(a, f"{metric}_std"), getattr(b, f"{metric}_std"))))

    parts, agree = [], 0
    for n in names:
        (dp, sp), (dr, sr) = change(n, "precision"), change(n, "recall")
        agree += dp > NOISE_SIGMAS * sp and -dr > NOISE_SIGMAS * sr
        parts.append(f"{n} precision {dp:+.1f} ± {sp:.1f}, recall {dr:+.1f} ± {sr:.1f}")
    verdict = ("the known answer for every schedule" if agree == len(names) else
               f"the known answer beyond noise for {agree} of {len(names)} schedules" if agree else
               "not the known answer beyond noise for any schedule")
    return (f"**Precision / recall against guidance** ({sampler.upper()}, {steps} NFE, percentage points from w = "
            f"{low:g} to w = {high:g}): " + "; ".join(parts) + ". Guidance is expected to raise precision and lower "
            f"recall (Ho & Salimans 2021: samples crowd the modes): {verdict}.")


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
