"""The write-up's verdicts follow from the numbers: synthetic metric files in, sentences out."""

import numpy as np

from conftest import default_params
from ddpm_study import schedules
from pipeline.outputs import Anchored, Cell, EvaluateMetrics, Pair, Scores, ScoreTable, SweepMetrics
from pipeline.writeup import findings, tables


def s(fid, std=1.0):
    return Scores(fid=fid, kid_mean=0.0, kid_std=0.0, fid_std=std)


def table(fids, pair_stds, std=1.0):
    """A score table like evaluate.json's: FIDs per schedule and paired differences with given stds."""
    names = list(fids)
    pairs = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diff, sd = fids[a] - fids[b], pair_stds.get(f"{a}-{b}", 1.0)
            pairs[(a, b)] = Pair(diff=diff, std=sd, within_noise=abs(diff) <= 2 * sd)
    return ScoreTable({n: s(f, std) for n, f in fids.items()}, pairs)


def sweep(few_diff, many_diff, few_std=0.5, many_std=0.5):
    cells = {Cell("ddim", steps): table({"linear": 50.0 + diff, "cosine": 50.0}, {"linear-cosine": sd})
             for steps, diff, sd in ((10, few_diff, few_std), (100, many_diff, many_std))}
    return SweepMetrics(num_images=200, jackknife_groups=50, real_vs_real=s(10.0), ceilings={}, eta=0.0, cells=cells)


def test_pair_reads_either_order():
    t = table({"linear": 10.0, "cosine": 7.0}, {})
    assert t.pair("linear", "cosine").diff == 3.0
    assert t.pair("cosine", "linear").diff == -3.0


def test_ranking_separates_ties_from_losses():
    t = table({"linear": 10.0, "cosine": 7.0, "sigmoid": 7.5}, {"linear-cosine": 0.5, "cosine-sigmoid": 1.0})
    text = findings.ranking(t, ["linear", "cosine", "sigmoid"])
    assert text.startswith("**cosine** has the lowest FID (7.0 ± 1.0)")
    assert "sigmoid (+0.5 ± 1.0) is within noise of it" in text
    assert "linear (+3.0 ± 0.5) is worse beyond noise" in text
    tied = findings.ranking(table({"linear": 7.2, "cosine": 7.0}, {"linear-cosine": 1.0}), ["linear", "cosine"])
    assert "does not separate the schedules" in tied
    single = findings.ranking(table({"cosine": 7.0}, {}), ["cosine"])
    assert single == "FID of cosine: 7.0 ± 1.0 (a single schedule: nothing to rank)."


def test_nichol_dhariwal_verdicts():
    check = lambda sw: findings.nichol_dhariwal_shortening(sw, ["ddim"], [10, 100], ["linear", "cosine"])[0]  # noqa: E731
    assert "**agree**" in check(sweep(8.0, 1.0))
    assert "within noise" in check(sweep(0.5, 0.2))
    assert "**disagree**" in check(sweep(-5.0, 0.0))
    assert "only half of the claim" in check(sweep(5.0, 5.0))
    assert "not checked" in findings.nichol_dhariwal_shortening(sweep(8.0, 1.0), ["ddim"], [10, 100], ["cosine"])[0]


def test_snr_fractions_show_the_linear_tail():
    """The premise of Nichol & Dhariwal's argument holds for our schedules at T = 1000."""
    params = default_params()["schedules"]
    frac = {name: findings.snr_fractions(np.cumprod(1 - schedules.get_betas(name, 1000, **params[name])))
            for name in ("linear", "cosine")}
    assert frac["cosine"]["medium"] > frac["linear"]["medium"]  # cosine spends more steps where it matters
    assert frac["linear"]["near_noise"] > 0.25 > 0.1 > frac["cosine"]["near_noise"]
    assert "agrees" in findings.wasted_tail(frac)


def test_placement_between_floor_and_ceiling():
    anchors = Anchored(num_images=500, jackknife_groups=50, real_vs_real=s(10.0),
                       ceilings={"gaussian_noise": s(410.0), "mean_image": s(210.0)})
    text = findings.placement(anchors, table({"linear": 60.0, "cosine": 30.0}, {}), ["linear", "cosine"])
    assert "mean image, FID 210.0, 100%" in text and text.endswith("cosine 10%, linear 25%.")


def test_sampler_gap():
    cells = {Cell("ddpm", 10): table({"linear": 90.0, "cosine": 80.0}, {}),
             Cell("ddim", 10): table({"linear": 95.0, "cosine": 70.0}, {})}
    sw = SweepMetrics(num_images=200, jackknife_groups=50, real_vs_real=s(10.0), ceilings={}, eta=0.0, cells=cells)
    assert findings.sampler_gap(sw, ["linear", "cosine"], [10]) == (
        "FID(DDIM) − FID(DDPM) ranges from -10.0 to +5.0: neither sampler is better everywhere.")
    cells[Cell("ddim", 10)] = table({"linear": 95.0, "cosine": 85.0}, {})
    assert "DDPM is better than DDIM at every schedule" in findings.sampler_gap(sw, ["linear", "cosine"], [10])


def versus_sweep(diffs: dict[Cell, float], std: float = 1.0) -> SweepMetrics:
    """One schedule's cells against DDPM at 100 NFE: the given paired differences."""
    base = Cell("ddpm", 100)
    cells = {c: table({"linear": 50.0 + d}, {}) for c, d in {**diffs, base: 0.0}.items()}
    versus = {"linear": {c: Pair(diff=d, std=std, within_noise=abs(d) <= 2 * std) for c, d in {**diffs, base: 0.0}.items()}}
    return SweepMetrics(num_images=200, jackknife_groups=50, real_vs_real=s(10.0), ceilings={}, eta=0.0, cells=cells,
                        baseline=base, versus_baseline=versus)


def test_the_cheapest_match_counts_network_calls_and_reports_the_deterministic_samplers():
    sw = versus_sweep({Cell("ddpm", 10): 5.0, Cell("ddpm", 20): 1.5, Cell("ode_clip", 20): -0.5, Cell("ddim", 20): 3.0})
    text = findings.cheapest_match(sw, ["linear"], ["ddim", "ode_clip"])
    # ODE_CLIP at a 20-NFE budget makes 19 calls: cheaper than DDPM's 20, and better than the baseline.
    assert "linear: ODE_CLIP at 19 NFE (-0.5 ± 1.0)" in text and "some match it" in text
    sw = versus_sweep({Cell("ddpm", 20): 1.5, Cell("ddim", 20): 3.0, Cell("ddim", 50): 2.5})
    text = findings.cheapest_match(sw, ["linear"], ["ddim"])
    assert "linear: DDPM at 20 NFE (+1.5 ± 1.0)" in text
    assert "none matches it at any NFE" in text and "linear DDIM at 50 NFE, +2.5 ± 1.0" in text
    assert "linear: none" in findings.cheapest_match(versus_sweep({Cell("ddpm", 20): 9.0}), ["linear"], [])


def test_the_sampler_reorders_schedules_only_beyond_noise():
    def at(ddpm_diff, ddim_diff):
        cells = {Cell(x, 10): table({"linear": 50.0 + d, "cosine": 50.0}, {"linear-cosine": 1.0})
                 for x, d in (("ddpm", ddpm_diff), ("ddim", ddim_diff))}
        return SweepMetrics(num_images=200, jackknife_groups=50, real_vs_real=s(10.0), ceilings={}, eta=0.0, cells=cells)
    names, samplers = ["linear", "cosine"], ["ddpm", "ddim"]
    assert "linear and cosine at 10 NFE" in findings.ranking_by_sampler(at(3.0, -3.0), names, samplers, [10])
    assert "does not reorder" in findings.ranking_by_sampler(at(3.0, -1.0), names, samplers, [10])
    assert "does not reorder" in findings.ranking_by_sampler(at(3.0, 4.0), names, samplers, [10])


def test_the_literature_check_reads_the_sign_of_the_few_step_gap():
    def at(ddim, dpm):
        cells = {Cell(x, n): table({"linear": f}, {}) for n in (10, 20)
                 for x, f in (("ddpm", 80.0), ("ddim", 80.0 + ddim), ("dpmpp2m", 80.0 + ddim + dpm))}
        return SweepMetrics(num_images=200, jackknife_groups=50, real_vs_real=s(10.0), ceilings={}, eta=0.0, cells=cells)
    lines = findings.literature_samplers(at(25.0, -2.0), ["linear"], ["ddpm", "ddim", "dpmpp2m"])
    assert "η = 0 13.36 against η = 1 (DDPM) 41.07, a gap of -27.7" in lines[0] and "**disagree**" in lines[0]
    assert "4.7 at 10 NFE, 2.87 at 20 NFE" in lines[1] and "small or absent here" in lines[1]
    lines = findings.literature_samplers(at(-25.0, -10.0), ["linear"], ["ddpm", "ddim", "dpmpp2m"])
    assert "**agree**" in lines[0] and "leads here too" in lines[1]


def test_precision_recall_summary_orders_by_recall_beside_the_floor():
    pr = lambda p, r: Scores(fid=50.0, kid_mean=0.0, kid_std=0.0, fid_std=1.0, precision=p, precision_std=0.02,  # noqa: E731
                             recall=r, recall_std=0.03)
    ev = EvaluateMetrics(num_images=500, jackknife_groups=50, real_vs_real=pr(0.8, 0.79), ceilings={},
                         table=ScoreTable({"linear": pr(0.7, 0.4), "cosine": pr(0.6, 0.5)}, {}))
    assert findings.precision_recall_summary(ev, ["linear", "cosine"]) == (
        "**Precision / recall** at the main setting (fidelity / diversity, Inception features, k = 3): cosine 60 ± 2% / "
        "50 ± 3%, linear 70 ± 2% / 40 ± 3%; real vs real 80 ± 2% / 79 ± 3%.")


def test_spread_ratios_quote_the_cases_with_fewer_samples_than_dimensions():
    bench = {"cases": [{"d": 16, "n_generated": 150, "n_reference": 400, "jackknife_ratio": 1.0, "bootstrap_ratio": 1.5},
                       {"d": 256, "n_generated": 100, "n_reference": 250, "jackknife_ratio": 1.27, "bootstrap_ratio": 3.69},
                       {"d": 512, "n_generated": 200, "n_reference": 500, "jackknife_ratio": 1.21, "bootstrap_ratio": 4.69}]}
    assert tables.spread_ratios(bench) == {"jackknife": (1.21, 1.27), "bootstrap": (3.69, 4.69)}


def test_schedule_colours_come_from_the_default_palette_in_registry_order():
    from pipeline.writeup import figures

    assert [figures.color(n) for n in ("linear", "quadratic", "sigmoid", "cosine")] == \
        ["tab:blue", "tab:orange", "tab:green", "tab:red"]  # the colours the committed figures use


def test_stated_constants_are_written_as_a_reader_writes_them():
    from pipeline.writeup import text

    assert text._power_of_ten(1e-6) == "1e-6" and text._power_of_ten(2.5e-3) == "2.5e-3"
    assert text._range((1.21, 1.27)) == "1.2–1.3×" and text._range((1.21, 1.24)) == "1.2×"


def test_guidance_rankings_report_a_reordering_only_beyond_noise():
    def guided(diffs):  # FID(linear) - FID(cosine) per guidance weight, paired std 0.5
        cells = {Cell("ddpm", 20, w): table({"linear": 50.0 + d, "cosine": 50.0}, {"linear-cosine": 0.5})
                 for w, d in diffs.items()}
        return SweepMetrics(num_images=200, jackknife_groups=50, real_vs_real=s(10.0), ceilings={}, eta=0.0, cells=cells)

    names = ["linear", "cosine"]
    flipped = findings.guidance_rankings(guided({-1.0: 3.0, 0.0: 0.2, 3.0: -4.0}), "ddpm", 20, [-1.0, 0.0, 3.0], names)
    assert flipped[0].startswith("w = -1 (unconditional): **cosine** has the lowest FID")
    assert flipped[1].startswith("w = 0 (conditional, unguided): ") and "within noise of it" in flipped[1]
    assert flipped[2].startswith("w = 3: **linear** has the lowest FID")
    assert flipped[3] == "Guidance reorders linear and cosine beyond noise."
    # The order changes, but only within noise at one of the weights: not a reordering.
    kept = findings.guidance_rankings(guided({-1.0: 3.0, 3.0: -0.5}), "ddpm", 20, [-1.0, 3.0], names)
    assert kept[-1].startswith("No pair of schedules is separated in opposite orders")


def test_guidance_precision_recall_checks_the_known_answer():
    """Guidance should raise precision and lower recall (Ho & Salimans 2021); the sentence says when it does not."""
    def pr(precision, recall, std=0.01):
        return Scores(fid=50.0, kid_mean=0.0, kid_std=0.0, fid_std=1.0, precision=precision, precision_std=std,
                      recall=recall, recall_std=std)

    def guided(by_weight):  # {w: {schedule: (precision, recall)}}
        cells = {Cell("ddpm", 20, w): ScoreTable({n: pr(*v) for n, v in row.items()}, {}) for w, row in by_weight.items()}
        return SweepMetrics(num_images=500, jackknife_groups=20, real_vs_real=s(10.0), ceilings={}, eta=0.0, cells=cells)

    names = ["linear", "cosine"]
    known = guided({-1.0: {"linear": (0.4, 0.7), "cosine": (0.4, 0.7)}, 0.0: {"linear": (0.5, 0.6), "cosine": (0.5, 0.6)},
                    3.0: {"linear": (0.8, 0.2), "cosine": (0.7, 0.3)}})
    text = findings.guidance_precision_recall(known, "ddpm", 20, [-1.0, 0.0, 3.0], names)
    # From the unguided conditional model (w = 0), not the unconditional one, to the largest weight.
    assert "from w = 0 to w = 3" in text
    assert "linear precision +30.0 ± 1.4, recall -40.0 ± 1.4; cosine precision +20.0 ± 1.4, recall -30.0 ± 1.4" in text
    assert text.endswith("the known answer for every schedule.")
    # Precision up, but recall only within noise for cosine: one of two.
    half = guided({0.0: {"linear": (0.5, 0.6), "cosine": (0.5, 0.6)}, 3.0: {"linear": (0.8, 0.2), "cosine": (0.7, 0.59)}})
    assert findings.guidance_precision_recall(half, "ddpm", 20, [0.0, 3.0], names).endswith(
        "the known answer beyond noise for 1 of 2 schedules.")
    wrong = guided({0.0: {"linear": (0.5, 0.6), "cosine": (0.5, 0.6)}, 1.0: {"linear": (0.4, 0.7), "cosine": (0.5, 0.6)}})
    assert "not the known answer beyond noise for any schedule" in findings.guidance_precision_recall(
        wrong, "ddpm", 20, [0.0, 1.0], names)
    # One weight, or cells scored before precision/recall: no sentence.
    assert findings.guidance_precision_recall(guided({0.0: {"linear": (0.5, 0.6), "cosine": (0.5, 0.6)}}), "ddpm", 20,
                                              [0.0], names) == ""


def test_guidance_cells_keep_their_weight_in_keys():
    for cell in (Cell("ddpm", 20), Cell("ode", 10, -1.0), Cell("sde", 5, 3.0), Cell("ddim", 50, 0.5)):
        assert Cell.from_key(cell.key) == cell
    assert Cell("ddpm", 20).key == "ddpm_20" and Cell("ode", 10, -1.0).key == "ode_w-1_10"


def inf_table(fid_infs, diff_inf_std=1.0):
    """FID∞ beside FID: each schedule's FID∞ and the paired differences of both."""
    names = list(fid_infs)
    scores = {n: Scores(fid=f + 20, kid_mean=0.0, kid_std=0.0, fid_std=0.5, fid_inf=f, fid_inf_std=2.0)
              for n, f in fid_infs.items()}
    pairs = {(a, b): Pair(diff=fid_infs[a] - fid_infs[b], std=0.5, within_noise=False, diff_inf=fid_infs[a] - fid_infs[b],
                          std_inf=diff_inf_std) for i, a in enumerate(names) for b in names[i + 1:]}
    return ScoreTable(scores, pairs)


def test_the_fid_infinity_ranking_reads_the_paired_differences_and_the_floor():
    floor = Scores(fid=12.0, kid_mean=0.0, kid_std=0.0, fid_std=0.4, fid_inf=0.8, fid_inf_std=1.5)
    text = findings.infinity_ranking(inf_table({"linear": 30.0, "cosine": 31.0, "sigmoid": 36.0}), ["linear", "cosine", "sigmoid"],
                                     floor)
    assert text.startswith("**linear** has the lowest FID∞ (30.0 ± 2.0); cosine 1.0 ± 1.0 higher (within noise), "
                           "sigmoid 6.0 ± 1.0 higher (beyond noise).")
    assert "Real vs real: FID∞ 0.8 ± 1.5 (0 is bias-free) against FID 12.0." in text and "4.0–4.0× FID's" in text
    assert findings.infinity_ranking(table({"linear": 1.0}, {}), ["linear"], s(1.0)) == "FID∞ was not computed for this run."


def test_bits_per_dim_and_the_likelihood_literature_check():
    from pipeline.outputs import Bits, LikelihoodMetrics

    def lk(cosine_minus_linear, std):
        return LikelihoodMetrics("test", 256, 50, 1000, {"linear": Bits(3.8, 0.06, 0.001), "cosine": Bits(3.8 + cosine_minus_linear, 0.06, 0.0)},
                                 {("linear", "cosine"): Pair(-cosine_minus_linear, std, abs(cosine_minus_linear) <= 2 * std)})
    assert findings.bits_per_dim(lk(-0.2, 0.02), ["linear", "cosine"]).startswith(
        "**Bits/dim** (the variational bound on 256 test images, lower is better): **cosine** 3.600 ± 0.060; linear +0.200 ± 0.020")
    assert "this study agrees: cosine's bound is lower beyond noise" in findings.nichol_dhariwal_likelihood(lk(-0.2, 0.02), ["linear", "cosine"])
    assert "cosine − linear = 0.200 ± 0.020 bits/dim: this study does not reproduce it" in findings.nichol_dhariwal_likelihood(
        lk(0.2, 0.02), ["linear", "cosine"])
    assert "cannot tell" in findings.nichol_dhariwal_likelihood(lk(0.01, 0.02), ["linear", "cosine"])


def test_a_single_schedule_is_placed_in_the_committed_ranking():
    from pipeline.baseline import Baseline

    committed = EvaluateMetrics(num_images=500, jackknife_groups=50, real_vs_real=s(10.0), ceilings={},
                                table=table({"linear": 60.0, "cosine": 57.0, "sigmoid": 62.0}, {"cosine-sigmoid": 3.0}))
    run = EvaluateMetrics(num_images=500, jackknife_groups=50, real_vs_real=s(10.0), ceilings={},
                          table=table({"cosine": 57.0}, {}))
    base = Baseline({"seed": 0, "sample": {"steps": 20}}, committed)
    assert base.differs_from({"seed": 0, "schedule": "cosine", "sample": {"steps": 20}}) == []
    assert base.differs_from({"seed": 1, "sample": {"steps": 50}}) == ["sample.steps", "seed"]
    text = findings.against_baseline(["cosine"], run, base, [])
    assert "cosine: FID 57.0 ± 1.0 here, 57.0 ± 1.0 in the committed study (the same number)" in text
    assert "FID(cosine) − FID(b) = linear -3.0 ± 1.0, sigmoid -5.0 ± 3.0 ≈" in text
    other = EvaluateMetrics(num_images=500, jackknife_groups=50, real_vs_real=s(10.0), ceilings={}, table=table({"cosine": 53.0}, {}))
    assert "unpaired (this run changes `seed`): -4.0 ± 1.4, beyond noise." in findings.against_baseline(["cosine"], other, base, ["seed"])
    assert findings.against_baseline(["cosine"], run, None, []).startswith("No committed baseline")
    # The same settings but other models (FID moved beyond the last digits, e.g. fp32 training on a CPU without
    # bf16): the baseline's paired differences do not apply, only the unpaired one.
    text = findings.against_baseline(["cosine"], other, base, [])
    assert "unpaired (the same settings but other models" in text and "-4.0 ± 1.4, beyond noise." in text
    assert "the samples are the baseline's" not in text


def test_a_single_schedule_is_placed_on_bits_per_dim_and_every_committed_sweep_cell():
    from pipeline.baseline import Baseline
    from pipeline.outputs import Bits, Cell, LikelihoodMetrics, SweepMetrics

    def lk(names, pairs):
        return LikelihoodMetrics("test", 256, 50, 1000, {n: Bits(3.7, 0.06, 0.0) for n in names},
                                 {k: Pair(d, 0.01, abs(d) <= 0.02) for k, d in pairs.items()}, 20)

    def sw(cells):
        return SweepMetrics(num_images=200, jackknife_groups=20, real_vs_real=s(50.0), ceilings={}, eta=0.0,
                            cells=cells, baseline=None, versus_baseline={})

    evaluate = EvaluateMetrics(num_images=500, jackknife_groups=50, real_vs_real=s(10.0), ceilings={},
                               table=table({"linear": 60.0, "cosine": 57.0}, {}))
    committed_cells = {Cell("ddpm", 10): table({"linear": 90.0, "cosine": 80.0}, {}),   # cosine ahead
                       Cell("ddim", 10): table({"linear": 100.0, "cosine": 101.0}, {}),  # tied
                       Cell("ddim", 20): table({"linear": 95.0, "cosine": 99.0}, {})}    # behind
    base = Baseline({"seed": 0}, evaluate, lk(["linear", "cosine"], {("linear", "cosine"): 0.1}), sw(committed_cells))
    run = EvaluateMetrics(num_images=500, jackknife_groups=50, real_vs_real=s(10.0), ceilings={},
                          table=table({"cosine": 57.0}, {}))
    run_sweep = sw({c: table({"cosine": t.scores["cosine"].fid}, {}) for c, t in committed_cells.items()})
    text = findings.against_baseline(["cosine"], run, base, [], lk(["cosine"], {}), run_sweep)
    assert "bits/dim(cosine) − bits/dim(b) = linear -0.100 ± 0.010." in text
    assert "In the committed sweep's 3 cells (N = 200) the paired verdicts put cosine against linear: ahead in 1, " \
           "tied in 1, behind in 1." in text

