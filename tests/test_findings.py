"""The write-up's verdicts follow from the numbers: synthetic metric files in, sentences out."""

import numpy as np

from conftest import default_params
from ddpm_study import schedules
from pipeline import findings


def scores(fids, pair_stds, std=1.0):
    """A metrics block like evaluate.json's: FIDs per schedule and paired differences with given stds."""
    names = list(fids)
    out = {n: {"fid": f, "fid_std": std} for n, f in fids.items()}
    out["pairs"] = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diff, s = fids[a] - fids[b], pair_stds.get(f"{a}-{b}", 1.0)
            out["pairs"][f"{a}-{b}"] = {"diff": diff, "std": s, "within_noise": abs(diff) <= 2 * s}
    return out


def test_pair_reads_either_order():
    s = scores({"linear": 10.0, "cosine": 7.0}, {})
    assert findings.pair(s, "linear", "cosine")["diff"] == 3.0
    assert findings.pair(s, "cosine", "linear")["diff"] == -3.0


def test_ranking_separates_ties_from_losses():
    s = scores({"linear": 10.0, "cosine": 7.0, "sigmoid": 7.5}, {"linear-cosine": 0.5, "cosine-sigmoid": 1.0})
    text = findings.ranking(s, ["linear", "cosine", "sigmoid"])
    assert text.startswith("**cosine** has the lowest FID (7.0 ± 1.0)")
    assert "sigmoid (+0.5 ± 1.0) is within noise of it" in text
    assert "linear (+3.0 ± 0.5) is worse beyond noise" in text
    tied = findings.ranking(scores({"linear": 7.2, "cosine": 7.0}, {"linear-cosine": 1.0}), ["linear", "cosine"])
    assert "does not separate the schedules" in tied
    single = findings.ranking(scores({"cosine": 7.0}, {}), ["cosine"])
    assert single == "FID of cosine: 7.0 ± 1.0 (a single schedule: nothing to rank)."


def sweep(few_diff, many_diff, few_std=0.5, many_std=0.5):
    cells = {}
    for steps, diff, s in ((10, few_diff, few_std), (100, many_diff, many_std)):
        cells[f"ddim_{steps}"] = scores({"linear": 50.0 + diff, "cosine": 50.0}, {"linear-cosine": s})
    return {"cells": cells}


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
    s = {"real_vs_real": {"fid": 10.0}, "ceilings": {"gaussian_noise": {"fid": 410.0}, "mean_image": {"fid": 210.0}},
         "linear": {"fid": 60.0}, "cosine": {"fid": 30.0}}
    text = findings.placement(s, ["linear", "cosine"])
    assert "mean image, FID 210.0, 100%" in text and text.endswith("cosine 10%, linear 25%.")


def test_sampler_gap():
    cell = lambda fids: {n: {"fid": f} for n, f in fids.items()}  # noqa: E731
    sweep = {"cells": {"ddpm_10": cell({"linear": 90.0, "cosine": 80.0}), "ddim_10": cell({"linear": 95.0, "cosine": 70.0})}}
    assert findings.sampler_gap(sweep, ["linear", "cosine"], [10]) == (
        "FID(DDIM) − FID(DDPM) ranges from -10.0 to +5.0: neither sampler is better everywhere.")
    sweep["cells"]["ddim_10"]["cosine"]["fid"] = 85.0
    assert "DDPM is better than DDIM at every schedule" in findings.sampler_gap(sweep, ["linear", "cosine"], [10])
