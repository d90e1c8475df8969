"""The write-up's Markdown: every number comes from the stage outputs, every verdict from ``findings``,
every stated constant from the code that uses it (``NOISE_SIGMAS``, ``EXACT_FID_RTOL``) or from a
committed benchmark result (the spread ratios); nothing is typed by hand."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ddpm_study.config import StudyConfig
from ddpm_study.samplers import REGISTRY, SAMPLERS
from ddpm_study.precision_recall import NEIGHBOURHOOD
from ddpm_study.uncertainty import EXACT_FID_RTOL

from .. import outputs
from ..baseline import Baseline
from ..outputs import Cell, EvaluateMetrics, SweepMetrics, TrainSummary
from . import findings, tables


@dataclass(frozen=True)
class Figures:
    schedules: str
    loss: str
    loss_by_timestep: str
    fid_vs_nfe: str
    same_noise: str
    trajectory: str
    guidance: str = ""  # conditional models only


@dataclass(frozen=True)
class Inputs:
    cfg: StudyConfig
    train: dict[str, TrainSummary]
    evaluate: EvaluateMetrics
    sweep: SweepMetrics
    samples: dict[str, outputs.SampleInfo]
    spread_ratios: dict[str, tuple[float, float]]  # tables.spread_ratios of the committed benchmark
    figures: Figures
    likelihood: outputs.LikelihoodMetrics
    baseline: Optional[Baseline] = None  # git HEAD's study (``pipeline.baseline``), read when the schedules differ
    baseline_differs: tuple[str, ...] = ()  # params.yaml keys this run changes against it, `schedule` aside
    verdict_rates: Optional[dict] = None  # benchmarks/verdict_rates_n<N>.json at this study's N, if measured


SAMPLER_ORDER = SAMPLERS  # the registry's order and sentences (``Sampler.describe``)
CLASS_EMBEDDING_TEXT = {
    "multiply": "a per-class gain multiplied into the features entering each decoder level (the seed notes' "
                "context embedding), the time embedding added in every residual block",
    "add": "added to the time embedding (as in ADM)",
}


def verdict_rates_sentence(result: dict) -> str:
    """What ``benchmarks/verdict_rates.py`` measured of the "within noise" rule, as one clause (docs/method.md
    quotes the same words for other N)."""
    e, shifts = result["equal"], result["shifts"]
    keys = sorted(shifts, key=float)

    def pct(values):
        return ", ".join(f"{v:.0%}".replace("%", " %") for v in values)

    wrong = max(shifts[k]["wrong_direction_rate"] for k in keys)
    levels = ", ".join(f"{100 * float(k):.0f}" for k in keys)
    if result.get("shift", "generated") == "generated":
        null, shifted = "two sets of one distribution", f"{levels} % of a set's features replaced by generated ones"
    elif result["shift"] == "model":  # benchmarks/verdict_rates.py --shift model
        fid_a = sum(r["fid_a"] for r in result["trials_detail"]) / len(result["trials_detail"])
        null = (f"two sample sets of one model ({result['model'].split(',')[0]}, FID {fid_a:.0f} against the "
                f"reference)")
        shifted = f"{levels} % of a set's samples replaced by the same model's from a pool of {result['pools']['shifted']}"
    else:  # benchmarks/verdict_rates.py --shift noise
        null = (f"two sets of one distribution at the schedules' distance (real features with Gaussian noise, "
                f"FID {result['target_fid']:.0f} against the reference)")
        shifted = f"the noise's variance raised by {levels} %"
    return (f"the rule called {null} different in {pct([e['false_better_rate']])} of trials "
            f"(the jackknife std was {e['std_ratio']:.2f}× the spread of ΔFID over trials; "
            f"{e['threshold_for_5pct']:.2f} stds would give a 5 % rate), and it detected shifts of known order "
            f"({shifted}; "
            f"mean ΔFID {', '.join(format(-shifts[k]['mean_diff'], '.1f') for k in keys)}) in "
            f"{pct([shifts[k]['power'] for k in keys])} of trials "
            f"({pct([shifts[k]['power_at_threshold_for_5pct'] for k in keys])} at {e['threshold_for_5pct']:.2f} stds), "
            + ("never in the wrong direction" if wrong == 0 else f"in the wrong direction in up to {wrong:.0%}"))


def _verdict_rates(result: Optional[dict], n: int) -> str:
    if result is None:
        return (f"The rule's error rates are not measured at N = {n} (`python benchmarks/verdict_rates.py --n {n}` "
                "measures them).")
    return (f"Its error rates at this N, measured on real features ({result['trials']} random partitions into a "
            f"reference and two sets of {result['n']}, `benchmarks/verdict_rates.py`): "
            + verdict_rates_sentence(result) + ".")


def full_chain_minutes(inputs: Inputs) -> float:
    """Sampling time of a T-step run at the sweep's N, extrapolated from the `sample` stage's measured speed."""
    per_image_step = np.mean([i.sample_time_s / (i.num_images * i.steps) for i in inputs.samples.values()])
    return float(per_image_step * inputs.sweep.num_images * inputs.cfg.diffusion.timesteps / 60)


def hardware(cfg: StudyConfig) -> str:
    if cfg.device != "cpu" and torch.cuda.is_available():
        return "CUDA GPU " + torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _power_of_ten(x: float) -> str:
    """1e-06 -> "1e-6", as a reader writes it."""
    mantissa, exponent = f"{x:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _range(lo_hi: tuple[float, float]) -> str:
    lo, hi = lo_hi
    return f"{lo:.1f}–{hi:.1f}×" if f"{lo:.1f}" != f"{hi:.1f}" else f"{lo:.1f}×"


def write_up(inputs: Inputs) -> str:
    cfg, train, evaluate, sweep, fig = inputs.cfg, inputs.train, inputs.evaluate, inputs.sweep, inputs.figures
    names, budgets, samplers = list(cfg.schedule), sorted(cfg.sweep.nfe), list(cfg.sweep.samplers)
    deterministic = [x for x in samplers if not REGISTRY[x].stochastic]
    s, e, tr = cfg.sample, cfg.evaluate, cfg.train
    conditional = cfg.model.num_classes > 0
    w = tables.main_guidance(cfg)  # the sweep's findings are read at this guidance weight
    at_w = f", w = {w:g}" if conditional else ""
    sample_info = inputs.samples[names[0]]
    sampler_text = findings.sampler_text(cfg)
    ddim_text = "deterministic (eta = 0)" if sweep.eta == 0 else f"stochastic (eta = {sweep.eta:g})"
    train_minutes = sum(train[n].train_time_s for n in names) / 60
    headline = tables.headline(cfg, train, evaluate)
    sweep_wide, sweep_best, _ = tables.sweep(cfg, sweep)
    snr, fractions = tables.snr(cfg)
    lines = [
        f"# Which noise schedule? A reproducible DDPM study on {cfg.data.dataset}",
        "",
        "Generated by `dvc repro` (stage `report`) from `metrics/train.json`, `metrics/evaluate.json`,",
        "`metrics/likelihood.json` and `metrics/sweep.json`; every number and every verdict below is computed from those files. Do not edit by",
        "hand: change `params.yaml` and rerun `dvc repro`.",
        "",
        "## Conclusions",
        "",
        f"- {findings.main_setting(cfg, evaluate)}",
        *(["- " + findings.against_baseline(names, evaluate, inputs.baseline, list(inputs.baseline_differs),
                                             inputs.likelihood, sweep)]
          if inputs.baseline is None or set(inputs.baseline.evaluate.table.scores) != set(names) else []),
        *[f"- **At {n} NFE, {sampler.upper()}{at_w}** (N = {sweep.num_images}): "
          + findings.ranking(sweep.cells[Cell(sampler, n, w)], names)
          for sampler in samplers for own in [cfg.sweep.budgets(sampler)] for n in sorted({own[0], own[-1]})],
        f"- **Free of N** (FID∞, Chong & Forsyth 2020: FID of subsets of {', '.join(f'{f:g}' for f in e.fid_inf_fractions)}"
        f" × N, a degree-{e.fid_inf_degree} polynomial in 1/N read at 1/N = 0): "
        + findings.infinity_ranking(evaluate.table, names, evaluate.real_vs_real),
        f"- {findings.bits_per_dim(inputs.likelihood, names)}",
        f"- {findings.placement(evaluate, evaluate.table, names)} Differences between schedules are to be read "
        "against that span.",
        *([f"- {findings.precision_recall_summary(evaluate, names)}"]
          if evaluate.table.scores[names[0]].precision is not None else []),
        *([f"- {findings.cheapest_match(sweep, names, deterministic)}"] if sweep.baseline and sweep.versus_baseline else []),
        f"- {findings.ranking_by_sampler(sweep, names, samplers, budgets, w)}",
        *([f"- **Samplers** (N = {sweep.num_images}{at_w}): "
           + " ".join(findings.sampler_gap(sweep, names, budgets, x, w) for x in deterministic)
           + f" DDIM here is {ddim_text}; its samples keep residual noise (trajectory figure). The committed "
           "sampler experiment ([`reports/samplers/README.md`](../samplers/README.md), "
           "`python benchmarks/sampler_study.py`) sweeps the timestep spacing, the start bound σ_max and the SDE/ODE "
           "to hundreds of steps, and measures the x̂₀ error the ε-model implies at each noise level. The extended study "
           "([`reports/extended/README.md`](../extended/README.md), `dvc repro extended/dvc.yaml`) checks "
           "the DDIM step against diffusers, compares sampler variants, follows the gap along a longer training "
           "run, separates each schedule's training from its sampling discretisation, and repeats the verdicts "
           "over training seeds."]
          if "ddpm" in samplers and deterministic else []),
        "",
        "### Against the literature (Nichol & Dhariwal 2021, *Improved DDPM*)",
        "",
        "*Expectation drawn from their paper: cosine's advantage over linear is largest when the reverse process is "
        "shortened (few sampling steps) and fades at full length:*",
        "",
        *[f"- {line}" for line in findings.nichol_dhariwal_shortening(sweep, samplers, budgets, names, w)],
        "",
        "*The end of the linear schedule is wasted:*",
        "",
        f"- {findings.wasted_tail(fractions)}",
        "",
        "*Likelihood:*",
        "",
        f"- {findings.nichol_dhariwal_likelihood(inputs.likelihood, names)}",
        "",
        *(["### Against the literature (DDIM and DPM-Solver: deterministic samplers at few NFE)", "",
           *[f"- {line}" for line in findings.literature_samplers(sweep, names, samplers, w)],
           "- Why this study differs: its models are trained for "
           f"{tr.steps:,} steps of batch {tr.batch_size}, where the published CIFAR-10 models trained for hundreds "
           "of thousands; an ε-model's x̂₀ = (x_t − √(1 − ᾱ) ε̂)/√ᾱ multiplies the ε error by σ = √((1 − ᾱ)/ᾱ), "
           "which a deterministic solver carries to x₀ while DDPM's fresh noise and clipping wash it out. The "
           "sampler experiment measures that error per noise level and schedule "
           "([`reports/samplers/README.md`](../samplers/README.md)); whether longer training or v-prediction closes "
           "the gap is the long-run and v-model study's question.", ""]
          if "ddpm" in samplers and deterministic else []),
        "## Protocol",
        "",
        f"- **Data**: {cfg.data.dataset}, "
        + (f"first {cfg.data.train_subset} training images" if cfg.data.train_subset else "all training images")
        + ", scaled to [−1, 1].",
        f"- **Model**: U-Net, base {cfg.model.base_channels} channels, multipliers {list(cfg.model.channel_mults)}, "
        f"{cfg.model.num_res_blocks} residual block(s) per level, attention in the middle block; ε-prediction, "
        f"T = {cfg.diffusion.timesteps}. **Training**: {tr.steps} steps of batch {tr.batch_size} "
        f"({tr.steps * tr.batch_size:,} images), AdamW lr {tr.lr:g}, EMA {tr.ema_decay}; samples come from the "
        f"EMA weights. One training seed ({cfg.seed}) per schedule (more seeds: the extended study).",
        f"- **Samplers** ({', '.join(x.upper() for x in SAMPLER_ORDER if x in {*samplers, s.sampler})}): "
        + "; ".join(REGISTRY[x].describe(cfg.sweep.eta) for x in SAMPLER_ORDER if x in {*samplers, s.sampler})
        + ". All run on the same respaced timesteps from the same x_T; respacing keeps t = T − 1, so every run "
        "starts from noise.",
        *([f"- **Conditioning**: {cfg.model.num_classes} classes, the class embedding "
           + CLASS_EMBEDDING_TEXT[cfg.model.class_embedding] + f"; labels replaced by a null class with probability "
           f"{tr.cond_drop_prob:g} in training. Classifier-free guidance (Ho & Salimans 2021): ε = (1 + w) ε(x, c) − "
           "w ε(x, ∅); w = −1 samples the same model unconditionally, w = 0 conditionally without guidance. Sampled "
           "classes cycle 0, 1, …, K−1, so every class has N/K samples."] if conditional else []),
        f"- **Main setting**: {sampler_text}, {sample_info.steps} steps, N = {evaluate.num_images} samples per schedule. "
        f"**Sweep**: {', '.join(x.upper() for x in samplers)} at {', '.join(map(str, budgets))} network calls per "
        "sample (NFE; each sampler takes the most steps that fit: "
        + ", ".join(f"{x.upper()} {'/'.join(str(Cell(x, n).steps) for n in cfg.sweep.budgets(x))}" for x in samplers)
        + " steps)"
        + (f"; DDPM also at {sweep.baseline.nfe} NFE, the baseline every cell is paired with"
           if sweep.baseline and sweep.baseline.nfe not in budgets else "")
        + (f", guidance w ∈ {{{', '.join(f'{g:g}' for g in cfg.sweep.guidance)}}}" if conditional else "")
        + f", N = {sweep.num_images} per cell."
        + (f" The full {cfg.diffusion.timesteps}-step chain is not in this sweep: at the measured sampling speed it "
           f"would take about {full_chain_minutes(inputs):.0f} min per schedule and sampler here (add it to "
           "`sweep.nfe` on a GPU)." if max(cfg.sweep.all_budgets) < cfg.diffusion.timesteps else ""),
        "- **Same noise**: every run (schedule, sampler, NFE) starts from the same x_T; within a setting the "
        "schedules also share DDPM's per-step noise, so schedule comparisons are paired.",
        f"- **Metrics**: FID and KID on 2048-d Inception-v3 pool features (torch-fidelity `inception-v3-compat`, the "
        f"reference FID network), against a fixed split of {evaluate.num_images} real training images "
        f"(seed {cfg.seed}). FID is computed exactly through the samples (`ddpm_study.uncertainty`, equal to "
        f"torch-fidelity's `sqrtm` result to {_power_of_ten(EXACT_FID_RTOL)} in the tests, at this study's shapes included). "
        f"KID: polynomial kernel, {e.kid_subsets} subsets of {e.kid_subset_size}. Precision and recall "
        f"(Kynkäänniemi et al. 2019, k = {NEIGHBOURHOOD}; equal to torch-fidelity's `prc` on the same features) on the "
        "Inception features, not torch-fidelity's default VGG-16 ones (their weights cannot be fetched here).",
        f"- **Spreads**: FID ± its delete-a-group jackknife standard error ({e.jackknife_groups} groups of the generated "
        "*and* of the reference features left out in turn); schedules drop the same groups, so each difference ΔFID "
        "has its own paired std. The jackknife is conservative (Efron–Stein): on synthetic features it overstated the "
        f"spread over true redraws {_range(inputs.spread_ratios['jackknife'])}, where a bootstrap overstated it "
        f"{_range(inputs.spread_ratios['bootstrap'])} at N < d "
        "(`benchmarks/spread_vs_redraws.py`). "
        f"\"Within noise\" means |ΔFID| ≤ {findings.NOISE_SIGMAS:g} × that std. "
        + _verdict_rates(inputs.verdict_rates, evaluate.num_images)
        + " KID ± the std over its subsets. The "
        "spread covers the sampling noise of the estimate at this N (another sampling seed, another real split), "
        "not training noise: each schedule was trained once.",
        f"- **FID∞** (Chong & Forsyth 2020) beside every FID but the ceilings': FID of the first "
        f"{', '.join(f'{f:g}' for f in e.fid_inf_fractions)} × N of one fixed permutation of each side (every schedule "
        f"the same one: paired), a least-squares polynomial of degree {e.fid_inf_degree} in 1/N through them, its value "
        "at 1/N = 0; its ± is the same paired jackknife, each replicate refitted on the kept samples. Below d = 2048 "
        "samples Chong & Forsyth's line (degree 1) leaves a large positive intercept for two real splits; the 1/N² "
        "term removes most of it (measured: [`docs/method.md`](../../docs/method.md), `benchmarks/fid_infinity.py`), "
        "and the floor row shows what is left at this N.",
        f"- **Bits/dim** (Ho et al. 2020, eq. 5, as improved-diffusion computes it: the prior KL, the Gaussian KL of "
        "each step with the fixed posterior variance β̃ on the clipped x̂₀, the discretised-Gaussian decoder for L₀) of "
        f"each EMA model on the first {inputs.likelihood.images} {inputs.likelihood.split} images: the exact prior"
        + (f", the {inputs.likelihood.exact_terms} terms at t < {inputs.likelihood.exact_terms} (L₀ among them) exactly"
           if inputs.likelihood.exact_terms else "")
        + f" plus, per image, one timestep drawn in each of {inputs.likelihood.strata} equal strata of "
        f"[{inputs.likelihood.exact_terms}, T) weighted by the "
        "stratum's size, an unbiased estimate of the full T-term sum (tests/test_likelihood.py checks the two agree). "
        "Every schedule sees the same images, timesteps and noise; ± is the standard error over images, paired for "
        "differences.",
        "- **Floor and ceilings** at the same N: a second, disjoint real split (real vs real) and two trivially bad "
        "generators (N(0, I) pixels; the data set's mean image repeated).",
        f"- **Hardware**: {hardware(cfg)}; training took {train_minutes:.0f} min for {len(names)} schedule(s).",
        "",
        f"FID at N = {evaluate.num_images} or {sweep.num_images} is strongly biased upwards: compare FIDs "
        "with each other at the same N and with the floor beside them, never with published 50k-sample numbers or "
        "across tables of different N. FID∞ is the column to compare across tables; its floor row says how close "
        "to bias-free it is at each N.",
        "",
        f"## Main setting: {sampler_text}, {s.steps} steps, N = {evaluate.num_images}",
        "",
        tables.markdown(headline),
        "",
        tables.markdown(tables.anchors(evaluate)),
        "",
        "Paired differences (a − b; negative: a is better; the verdict reads ΔFID at N):",
        "",
        tables.markdown(tables.pairs(evaluate.table, names)) or "(a single schedule: nothing to compare)",
        "",
        f"## Quality against sampling cost (N = {sweep.num_images} per cell)",
        "",
        f"![FID and KID against network calls per sample]({fig.fid_vs_nfe})",
        "",
        tables.markdown(sweep_wide),
        "",
        tables.markdown(sweep_best),
        "",
        tables.markdown(tables.anchors(sweep)),
        "",
        f"FID∞ per cell (the main setting's scale; at N = {sweep.num_images} the extrapolation is long and the floor row "
        "above shows how far from 0 it stays):",
        "",
        tables.markdown(tables.sweep_infinity(cfg, sweep)),
        "",
        "Precision / recall (%, Kynkäänniemi et al. 2019, k = 3, on the same Inception features; torch-fidelity's "
        "default VGG-16 features need weights that cannot be fetched here): precision is the share of samples inside "
        "the real manifold (fidelity), recall the share of real images inside the samples' (diversity); their "
        "jackknife stds are in `sweep.csv`.",
        "",
        tables.markdown(tables.sweep_precision_recall(cfg, sweep)),
        "",
        "All cells, with KID: [`sweep.csv`](sweep.csv); per-cell paired differences, and every cell against "
        "the baseline per schedule: `metrics/sweep.json`. `dvc plots show` draws the same curves from `plots/sweep/`.",
        *(["", f"Every cell against {sweep.baseline.sampler.upper()} at {sweep.baseline.nfe} NFE, per schedule "
           "(ΔFID paired over the shared x_T; negative: better than the baseline):", "",
           tables.markdown(tables.versus_baseline(cfg, sweep))] if sweep.baseline and sweep.versus_baseline else []),
        "",
        f"## Bits/dim ({inputs.likelihood.images} {inputs.likelihood.split} images, lower is better)",
        "",
        tables.markdown(tables.bits_per_dim(cfg, inputs.likelihood)),
        "",
        tables.markdown(tables.likelihood_pairs(inputs.likelihood)) or "(a single schedule: nothing to compare)",
        "",
        *(conditional_section(inputs) if conditional else []),
        "## Where the schedules differ",
        "",
        f"![alpha_bar and log-SNR]({fig.schedules})",
        "",
        "Share of timesteps in each SNR band (grey in the right panel), over all T steps and over the few-step "
        "sampler's respaced steps:",
        "",
        tables.markdown(snr),
        "",
        f"![loss by timestep]({fig.loss_by_timestep})",
        "",
        "Left: ε-prediction loss per tenth of [0, T) at the end of training. Right: the same buckets placed at their "
        "log-SNR, where schedules can be compared: a schedule spends its training where its buckets are.",
        "",
        f"![training loss]({fig.loss})",
        "",
        f"## Same noise, {len(names)} schedule{'s' if len(names) > 1 else ''}",
        "",
        f"![same initial noise]({fig.same_noise})",
        "",
        f"![denoising trajectories]({fig.trajectory})",
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
    return "\n".join(lines) + "\n"


def conditional_section(inputs: Inputs) -> list[str]:
    """Class-conditional models: the schedules per class and under guidance, and the per-class grids."""
    cfg, evaluate, sweep = inputs.cfg, inputs.evaluate, inputs.sweep
    names, most = list(cfg.schedule), max(cfg.sweep.nfe)
    sampler = cfg.sweep.samplers[0]
    return [
        "## Conditional generation: per class and under guidance",
        "",
        f"Main setting, N = {evaluate.num_images} ({evaluate.num_images // cfg.model.num_classes} per class): FID "
        "against the whole real split, and per class (the class's samples against the split's images of that class, "
        "a few dozen each, so every per-class FID is far above its 50k value; read them against the floor row).",
        "",
        tables.markdown(tables.per_class(cfg, evaluate)),
        "",
        f"Guidance sweep (N = {sweep.num_images}, FID against the whole real split):",
        "",
        f"![FID against guidance]({inputs.figures.guidance})",
        "",
        *[part for x in cfg.sweep.samplers for part in (f"**{x.upper()}, {most} NFE**", "",
                                                         tables.markdown(tables.guidance(cfg, sweep, x, most)), "")],
        f"Schedule ranking against the guidance weight ({sampler.upper()}, {most} NFE):",
        "",
        *[f"- {line}" for line in findings.guidance_rankings(sweep, sampler, most, sorted(cfg.sweep.guidance), names)],
        *[f"- {line}" for line in [findings.guidance_precision_recall(sweep, sampler, most, list(cfg.sweep.guidance),
                                                                       names)] if line],
        "",
        "One row per class, top to bottom in label order ("
        + ", ".join(evaluate.per_class.names) + "); every row starts from the same noise, so a column "
        f"shows one x_T under each label ({cfg.sample.sampler.upper()}, {cfg.sample.steps} steps, w = "
        f"{cfg.sample.guidance:g}):",
        "",
        "| " + " | ".join(names) + " |",
        "|" + "---|" * len(names),
        "| " + " | ".join(f"![{n} per class](classes_{n}.png)" for n in names) + " |",
        "",
    ]
