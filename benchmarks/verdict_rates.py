"""How often is the write-up's verdict rule wrong? Its false-"better" rate on equal distributions and its power on a
known shift, measured on real Inception features (issue 29, part 3).

The rule (``uncertainty.compare``): two sets differ when |ΔFID| > 2 x the paired jackknife std of the difference.
Each trial partitions real Fashion-MNIST features at random into a reference R and two sets A and B of N each
(disjoint: one distribution, so every "better" verdict between A and B is false), and makes shifted copies of B
with a fraction p of its features replaced by generated ones (the committed sweep's DDPM-100 cells, all
schedules pooled): a shift of known order, FID(B_p) > FID(A) in expectation, growing with p. One paired jackknife
per trial scores A, B and every B_p against R with the study's groups. Reported: the false-"better" rate, the
power and the wrong-direction rate at each p, the ratio of the mean jackknife std to the spread of ΔFID over
trials, and the threshold (in stds) that would give a 5 % false-"better" rate. The sets here are not paired by
shared noise as the study's schedules are, so this is the unpaired case.

``--shift noise`` is the same measurement at the schedules' own distance from the reference, from real features
alone. Two disjoint real sets sit far closer to each other (FID's small-N floor) than the schedules' samples sit to
the reference, so the null above is easier than the schedules' own. Here every set gets Gaussian noise in feature
space, each feature scaled by its own std over the real pool, at one level s0 chosen (by bisection, on the first
trial's sets) so that a noisy set scores the main setting's median schedule FID (metrics/evaluate.json) against
R: A and B are two noisy sets of one distribution at that FID. The shifted copies of B keep B's noise draw and
raise its variance by a fraction p (``NOISE_SHIFTS``): FID grows with the noise, so their order is known. It needs
neither the sweep nor a model, so it runs on any machine with the prepared data.

Needs the real features of benchmarks/fid_infinity.py (cached in .cache/fid_infinity/) and, for ``--shift
generated``, the committed sweep (`dvc repro` or `dvc checkout`). Writes benchmarks/verdict_rates_n<N>.json
(``--shift noise``: ..._n<N>_noise.json); the main write-up states the generated-shift rates at the main setting's
N (``sample.num_images``), the default here.

    python benchmarks/verdict_rates.py --trials 100                  # N = sample.num_images (about 50 s a trial at 2,000)
    python benchmarks/verdict_rates.py --trials 100 --n 500          # the earlier main setting's N
    python benchmarks/verdict_rates.py --trials 100 --shift noise    # the null at the schedules' distance
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.fid_infinity import real_features  # noqa: E402
from ddpm_study import uncertainty  # noqa: E402
from pipeline import outputs, params  # noqa: E402

FRACTIONS = (0.1, 0.2, 0.3)  # --shift generated: the fraction of B's features replaced by generated ones
NOISE_SHIFTS = (0.02, 0.05, 0.1)  # --shift noise: the fraction by which B's feature-noise variance is raised
SHIFTS = {"generated": FRACTIONS, "noise": NOISE_SHIFTS}


def results_path(n: int, shift: str = "generated") -> Path:
    return ROOT / "benchmarks" / f"verdict_rates_n{n}{'' if shift == 'generated' else '_' + shift}.json"


def noise_null_quote(result: dict, pairs: dict) -> str:
    """docs/method.md's words on a ``--shift noise`` result (tests/test_docs.py checks the page quotes them), with the
    main setting's paired schedule stds (metrics/evaluate.json ``pairs``) beside its spread."""
    from pipeline.writeup.text import verdict_rates_sentence

    stds = [p["std"] for p in pairs.values()]
    return (f"At the schedules' own distance (`python benchmarks/verdict_rates.py --shift noise`, from real features "
            f"alone, no model needed, {result['seconds'] / result['trials'] / 60:.1f} min a trial here; "
            f"{result['trials']} trials so far, resumable, `benchmarks/{results_path(result['n'], 'noise').name}`): "
            + verdict_rates_sentence(result)
            + f". Matching the schedules' FID does not match their spread: the jackknife std of ΔFID averaged "
            f"{result['equal']['mean_jackknife_std']:.2f} here, against the schedules' paired stds of "
            f"{min(stds):.1f}–{max(stds):.1f} at the main setting, so how the sets differ, not how far they sit from "
            f"the reference, sets the spread; two generated sets of one model would be the null that matches it.")


def noisy(x: np.ndarray, scale: np.ndarray, level: float, eps: np.ndarray) -> np.ndarray:
    """Real features with Gaussian noise, each feature's scaled by its own std: x + level * scale * eps."""
    return (x + level * scale * eps).astype(x.dtype)


def noise_level(a: np.ndarray, ref: np.ndarray, scale: np.ndarray, eps: np.ndarray, target: float,
                tol: float = 0.01) -> float:
    """The level at which ``noisy(a)`` scores FID ``target`` against ``ref``, by bisection (FID grows with it)."""
    def fid(level: float) -> float:
        return uncertainty.frechet_distance(noisy(a, scale, level, eps), ref)

    if fid(0.0) >= target:
        raise SystemExit(f"the real sets already score FID {fid(0.0):.1f} >= the target {target:.1f}")
    lo, hi = 0.0, 1.0
    while fid(hi) < target:
        lo, hi = hi, 2 * hi
    while hi - lo > tol * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fid(mid) < target else (lo, mid)
    return (lo + hi) / 2


def verdict(p: dict) -> str:
    """"tied", "a better" or "b better", as the write-up reads a pair."""
    return "tied" if p["within_noise"] else ("a better" if p["diff"] < 0 else "b better")


def summary(rows: list[dict]) -> dict:
    """The rates over trials: at the rule's 2 stds, and at the threshold that gives a 5 % false-"better" rate."""
    equal = [r["b"] for r in rows]
    diffs, stds = np.array([r["diff"] for r in equal]), np.array([r["std"] for r in equal])
    calibrated = float(np.quantile(np.abs(diffs) / stds, 0.95))

    def found(r: dict, sigmas: float) -> bool:
        return r["diff"] < -sigmas * r["std"]

    return {
        "equal": {"false_better_rate": float(np.mean([not r["within_noise"] for r in equal])),
                  "std_of_diff_over_trials": float(diffs.std(ddof=1)), "mean_jackknife_std": float(stds.mean()),
                  "std_ratio": float(stds.mean() / diffs.std(ddof=1)), "threshold_for_5pct": calibrated},
        "shifts": {key[1:]: {"mean_diff": float(np.mean([r[key]["diff"] for r in rows])),
                             "power": float(np.mean([verdict(r[key]) == "a better" for r in rows])),
                             "power_at_threshold_for_5pct": float(np.mean([found(r[key], calibrated) for r in rows])),
                             "wrong_direction_rate": float(np.mean([verdict(r[key]) == "b better" for r in rows]))}
                   for key in rows[0] if key.startswith("b") and key != "b"},
    }


def main(trials: int = typer.Option(40), n: int = typer.Option(0, help="images per set; 0 = sample.num_images (the main setting's N)"),
         real: int = typer.Option(4000, help="images per cached real split (benchmarks/fid_infinity.py --n)"),
         shift: str = typer.Option("generated", help="the known shift: generated (features replaced by the sweep's) "
                                                     "or noise (feature noise at the schedules' FID; no sweep needed)")):
    if shift not in SHIFTS:
        raise SystemExit(f"--shift must be one of {', '.join(SHIFTS)}, got {shift!r}")
    cfg = params.load(ROOT / "params.yaml")
    groups, n = cfg.evaluate.jackknife_groups, n or cfg.sample.num_images
    pool_real = np.concatenate(real_features(real, cfg.seed))
    setup = {"n": n, "jackknife_groups": groups, "noise_sigmas": uncertainty.NOISE_SIGMAS}
    if shift == "generated":
        base = outputs.baseline_cell(cfg.sweep)
        pool_gen = np.concatenate([outputs.read_sweep_array(name, base, "features") for name in cfg.schedule])
        if max(FRACTIONS) * n > len(pool_gen):
            raise SystemExit(f"N = {n} needs {int(max(FRACTIONS) * n)} generated features; have {len(pool_gen)}")
        setup["generated"] = f"{base.key} of {', '.join(cfg.schedule)}"
    else:
        evaluated = json.loads((ROOT / "metrics" / "evaluate.json").read_text())
        target = float(np.median([evaluated[name]["fid"] for name in cfg.schedule]))
        scale = pool_real.std(0)
        setup |= {"shift": shift, "target_fid": target}
    if 3 * n > len(pool_real):
        raise SystemExit(f"N = {n} needs {3 * n} real features; have {len(pool_real)} (--real {real})")
    rng = np.random.default_rng((cfg.seed, 9300))
    path = results_path(n, shift)
    # Resumable: the trials of an earlier run with the same setup are kept, and the random draws replayed, so a
    # run stopped after k trials and resumed gives what one run would have.
    earlier = json.loads(path.read_text()) if path.exists() else {}
    same = earlier and all(earlier.get(k) == v for k, v in setup.items())
    rows, seconds = (list(earlier["trials_detail"]), earlier["seconds"]) if same else ([], 0.0)
    level = earlier.get("noise_level") if same else None
    t0 = time.perf_counter()
    for trial in range(trials):
        perm = rng.permutation(len(pool_real))
        ref, a, b = (pool_real[perm[i * n:(i + 1) * n]] for i in range(3))
        if shift == "generated":
            sets = {"a": a, "b": b}
            for p in FRACTIONS:
                shifted = b.copy()
                k = int(round(p * n))
                shifted[:k] = pool_gen[rng.permutation(len(pool_gen))[:k]]
                sets[f"b{p:g}"] = shifted
        else:
            eps_a, eps_b = (rng.standard_normal(a.shape, dtype=np.float32) for _ in range(2))
            if level is None:  # once, on the first trial's draws; kept in the results so a resumed run reuses it
                level = noise_level(a, ref, scale, eps_a, target)
            sets = {"a": noisy(a, scale, level, eps_a), "b": noisy(b, scale, level, eps_b)}
            for p in NOISE_SHIFTS:
                sets[f"b{p:g}"] = noisy(b, scale, level * np.sqrt(1 + p), eps_b)
        if trial < len(rows):
            continue
        fid, reps = uncertainty.jackknife(ref, sets, groups, (cfg.seed, 9400 + trial))
        rows.append({key: {**uncertainty.compare(fid["a"], fid[key], reps["a"], reps[key]), "fid": fid[key]}
                     for key in sets if key != "a"} | {"fid_a": fid["a"]})
        print(f"trial {trial + 1}/{trials}: " + "  ".join(f"{k} {verdict(v)} ({v['diff']:+.1f} ± {v['std']:.1f})"
                                                         for k, v in rows[-1].items() if k != "fid_a"), flush=True)
        result = {
            "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                        "torch": torch.__version__},
            **setup, **({"noise_level": level} if shift == "noise" else {}),
            "trials": len(rows), "seconds": seconds + time.perf_counter() - t0,
            **summary(rows), "trials_detail": rows,
        }
        path.write_text(json.dumps(result, indent=2) + "\n")  # after every trial: a killed run resumes here
    print(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "trials_detail"}, indent=2))


if __name__ == "__main__":
    typer.run(main)
