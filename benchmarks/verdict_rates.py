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

Needs the real features of benchmarks/fid_infinity.py (cached in .cache/fid_infinity/) and the committed sweep
(`dvc repro` or `dvc checkout`). Writes benchmarks/verdict_rates_n<N>.json; the main write-up states the rates at
the main setting's N (``sample.num_images``), the default here.

    python benchmarks/verdict_rates.py --trials 100            # N = sample.num_images (about 50 s a trial at 2,000)
    python benchmarks/verdict_rates.py --trials 100 --n 500    # the earlier main setting's N
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

FRACTIONS = (0.1, 0.2, 0.3)


def results_path(n: int) -> Path:
    return ROOT / "benchmarks" / f"verdict_rates_n{n}.json"


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
         real: int = typer.Option(4000, help="images per cached real split (benchmarks/fid_infinity.py --n)")):
    cfg = params.load(ROOT / "params.yaml")
    groups, n = cfg.evaluate.jackknife_groups, n or cfg.sample.num_images
    pool_real = np.concatenate(real_features(real, cfg.seed))
    base = outputs.baseline_cell(cfg.sweep)
    pool_gen = np.concatenate([outputs.read_sweep_array(name, base, "features") for name in cfg.schedule])
    if 3 * n > len(pool_real) or max(FRACTIONS) * n > len(pool_gen):
        raise SystemExit(f"N = {n} needs {3 * n} real and {int(max(FRACTIONS) * n)} generated features; "
                         f"have {len(pool_real)} and {len(pool_gen)}")
    rng = np.random.default_rng((cfg.seed, 9300))
    setup = {"n": n, "jackknife_groups": groups, "noise_sigmas": uncertainty.NOISE_SIGMAS,
             "generated": f"{base.key} of {', '.join(cfg.schedule)}"}
    path = results_path(n)
    # Resumable: the trials of an earlier run with the same setup are kept, and the random draws replayed, so a
    # run stopped after k trials and resumed gives what one run would have.
    earlier = json.loads(path.read_text()) if path.exists() else {}
    same = earlier and all(earlier.get(k) == v for k, v in setup.items())
    rows, seconds = (list(earlier["trials_detail"]), earlier["seconds"]) if same else ([], 0.0)
    t0 = time.perf_counter()
    for trial in range(trials):
        perm = rng.permutation(len(pool_real))
        ref, a, b = (pool_real[perm[i * n:(i + 1) * n]] for i in range(3))
        sets = {"a": a, "b": b}
        for p in FRACTIONS:
            shifted = b.copy()
            k = int(round(p * n))
            shifted[:k] = pool_gen[rng.permutation(len(pool_gen))[:k]]
            sets[f"b{p:g}"] = shifted
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
            **setup, "trials": len(rows), "seconds": seconds + time.perf_counter() - t0,
            **summary(rows), "trials_detail": rows,
        }
        path.write_text(json.dumps(result, indent=2) + "\n")  # after every trial: a killed run resumes here
    print(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "trials_detail"}, indent=2))


if __name__ == "__main__":
    typer.run(main)
