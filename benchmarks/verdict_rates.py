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

``--shift model`` is the null that matches the schedules' spread: A and B are two disjoint sets of one model's samples
at the main setting (the ``sample`` section: sampler, steps, spacing), drawn each trial from a pool of
``MODEL_POOL`` images of the first schedule of ``--schedule``, and the shifted copies of B have a fraction p
(``FRACTIONS``) of their images replaced by the same model's samples at the sweep's fewest DDPM steps
(``min(sweep.nfe)``, 7–12 FID worse than the main setting in the committed sweep at N = 200): two models of known order, the kind of
difference the study's verdicts are about. The model is the main study's (``models/<schedule>``) when `dvc repro`
has made it and it is current, else one trained here into .cache/verdict_rates/ with the same configuration and
seed (resumable; on a CPU without native bf16 it trains in fp32, and the results name the precision). The pools'
Inception features are cached beside it, so the trials cost only the jackknifes.

Every mode resumes after each trial; a results file of another setup (another model, N or groups) stops the run
with what differs, and ``--restart`` replaces it.

Needs the real features of benchmarks/fid_infinity.py (cached in .cache/fid_infinity/) and, for ``--shift
generated``, the committed sweep (`dvc repro` or `dvc checkout`). Writes benchmarks/verdict_rates_n<N>.json
(``--shift noise``: ..._n<N>_noise.json, ``--shift model``: ..._n<N>_model_<schedule>.json); the main write-up states the generated-shift rates at the main setting's
N (``sample.num_images``), the default here.

    python benchmarks/verdict_rates.py --trials 100                  # N = sample.num_images (about 50 s a trial at 2,000)
    python benchmarks/verdict_rates.py --trials 100 --n 500          # the earlier main setting's N
    python benchmarks/verdict_rates.py --trials 100 --shift noise    # the null at the schedules' distance
    python benchmarks/verdict_rates.py --trials 100 --shift model    # two sample sets of one model
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
SHIFTS = {"generated": FRACTIONS, "noise": NOISE_SHIFTS, "model": FRACTIONS}
MODEL_POOL, WORSE_POOL = 5000, 1500  # --shift model: images at the main setting, at the sweep's fewest DDPM steps
CACHE = ROOT / ".cache" / "verdict_rates"


def results_path(n: int, shift: str = "generated", schedule: str = "cosine") -> Path:
    suffix = {"generated": "", "noise": "_noise", "model": f"_model_{schedule}"}[shift]
    return ROOT / "benchmarks" / f"verdict_rates_n{n}{suffix}.json"


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
            f"the reference, sets the spread; two sample sets of one model (next) are the null that matches it.")


def model_null_quote(result: dict, pairs: dict) -> str:
    """docs/method.md's words on a ``--shift model`` result, with the main setting's paired schedule stds beside its
    spread (as ``noise_null_quote``)."""
    from pipeline.writeup.text import verdict_rates_sentence

    stds = [p["std"] for p in pairs.values()]
    e = result["equal"]
    return (f"Two sample sets of one model (`python benchmarks/verdict_rates.py --shift model`: {result['model']}; "
            f"{result['trials']} trials so far, {result['seconds'] / result['trials'] / 60:.1f} min a trial here, "
            f"resumable, `benchmarks/{results_path(result['n'], 'model', model_schedule(result)).name}`): "
            + verdict_rates_sentence(result)
            + f". A and B were drawn each trial from one pool of {result['pools']['a_b']}, so the trials resample "
            f"that pool (a permutation null) rather than redraw the model's distribution. The jackknife std of ΔFID "
            f"averaged {e['mean_jackknife_std']:.2f} and ΔFID spread "
            f"{e['std_of_diff_over_trials']:.2f} over trials, against the schedules' paired stds of "
            f"{min(stds):.1f}–{max(stds):.1f} at the main setting (paired by shared noise, so a paired null would "
            f"spread less than this unpaired one).")


def model_schedule(result: dict) -> str:
    """The schedule a ``--shift model`` result sampled (the first word of its ``model``)."""
    return result["model"].split(",")[0]


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


def study_model(cfg, name: str, device: torch.device) -> tuple[torch.nn.Module, str, str]:
    """The EMA model of schedule ``name``: the main study's when current, else trained (or resumed) into CACHE with
    the main study's configuration and seed; with the precision it trained in and where it came from."""
    from ddpm_study import training
    from pipeline import checkpoints, lineage

    main_path = outputs.checkpoint(name)
    try:
        model = checkpoints.load(cfg, name, device)[0]
        path, where = main_path, "main"
    except Exception as error:  # absent or stale: this benchmark trains its own copy
        print(f"{main_path} not usable ({type(error).__name__}); training {name} into {CACHE}",
              flush=True)
        path, where = CACHE / f"{name}_seed{cfg.seed}" / "checkpoint.pt", "here"
        path.parent.mkdir(parents=True, exist_ok=True)
        run_lineage = lineage.training(cfg, name)
        checkpoints.fit(cfg, name, seed=cfg.seed, steps=cfg.train.steps, lineage=run_lineage, checkpoint=path,
                        images=checkpoints.training_images(cfg), device=device, label=f"train {name}")
        model = checkpoints.load_finished(path, cfg, run_lineage, cfg.train.steps, device)
    return model, training.load_checkpoint(path)["lineage"]["train"]["precision"], where


def model_features(cfg, name: str, model: torch.nn.Module, tag: str, sampler: str, steps: int, spacing: str,
                   sigma_max: float, num_images: int, seed: int, device: torch.device) -> np.ndarray:
    """Inception features of ``num_images`` samples of ``model``, cached in CACHE under the model (``tag``) and
    the sampling settings."""
    from ddpm_study import metrics, samplers, sampling

    path = CACHE / f"{name}_{tag}_{sampler}{steps}_{spacing}_s{sigma_max:g}_{num_images}_seed{seed}.npy"
    if not path.exists():
        t = time.perf_counter()
        spaced = samplers.reverse_process(cfg.gaussian_diffusion(name), steps, spacing, sigma_max)
        images = sampling.generate(model, spaced, num_images=num_images, batch_size=cfg.sample.batch_size,
                                   image_shape=cfg.image_shape, seed=seed, device=device, sampler=sampler,
                                   eta=0.0, trajectory_images=1, trajectory_frames=2).images
        sampled = time.perf_counter() - t
        feats = metrics.inception_features(images, 50, device).cpu().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, feats)
        print(f"{path.name}: sampled in {sampled:.0f} s, features in {time.perf_counter() - t - sampled:.0f} s",
              flush=True)
    return np.load(path)


def replaced(b: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The shifted copies of B: for each p of ``FRACTIONS``, B with its first round(p N) rows replaced by as many
    rows drawn from ``pool`` without replacement (a fresh draw for each p, in this order, as the trials replay)."""
    out = {}
    for p in FRACTIONS:
        shifted, k = b.copy(), int(round(p * len(b)))
        shifted[:k] = pool[rng.permutation(len(pool))[:k]]
        out[f"b{p:g}"] = shifted
    return out


def earlier_trials(path: Path, setup: dict, restart: bool = False) -> dict:
    """The results at ``path`` when they were measured with ``setup`` (to resume), {} when there are none or
    ``restart``; results of another setup stop the run, naming what differs, rather than being overwritten."""
    if not path.exists() or restart:
        return {}
    earlier = json.loads(path.read_text())
    differ = [k for k, v in setup.items() if earlier.get(k) != v]
    if differ:
        raise SystemExit(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} holds "
                         f"{earlier.get('trials', 0)} trials of another setup ("
                         + "; ".join(f"{k}: {earlier.get(k)!r} there, {setup[k]!r} here" for k in differ)
                         + "); move it aside, or pass --restart to replace it")
    return earlier


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
         shift: str = typer.Option("generated", help="the known shift: generated (features replaced by the sweep's), "
                                                     "noise (feature noise at the schedules' FID; no sweep needed) or "
                                                     "model (two sample sets of one model; B partly from fewer steps)"),
         schedule: str = typer.Option("cosine", help="--shift model: the schedule whose model is sampled"),
         restart: bool = typer.Option(False, help="replace a results file of another setup instead of stopping")):
    if shift not in SHIFTS:
        raise SystemExit(f"--shift must be one of {', '.join(SHIFTS)}, got {shift!r}")
    cfg = params.load(ROOT / "params.yaml")
    if shift == "model" and schedule not in cfg.schedules:
        raise SystemExit(f"--schedule must be one of {', '.join(cfg.schedules)}, got {schedule!r}")
    groups, n = cfg.evaluate.jackknife_groups, n or cfg.sample.num_images
    pool_real = np.concatenate(real_features(real, cfg.seed))
    setup = {"n": n, "jackknife_groups": groups, "noise_sigmas": uncertainty.NOISE_SIGMAS}
    if shift == "generated":
        base = outputs.baseline_cell(cfg.sweep)
        pool_gen = np.concatenate([outputs.read_sweep_array(name, base, "features") for name in cfg.schedule])
        if max(FRACTIONS) * n > len(pool_gen):
            raise SystemExit(f"N = {n} needs {int(max(FRACTIONS) * n)} generated features; have {len(pool_gen)}")
        setup["generated"] = f"{base.key} of {', '.join(cfg.schedule)}"
    elif shift == "model":
        if 2 * n > MODEL_POOL or max(FRACTIONS) * n > WORSE_POOL:
            raise SystemExit(f"N = {n} needs {2 * n} model samples (have a pool of {MODEL_POOL}) and "
                             f"{int(max(FRACTIONS) * n)} worse ones (pool {WORSE_POOL})")
        from ddpm_study.runtime import setup_device

        device = setup_device(cfg.device, cfg.reproducible)
        model, precision, where = study_model(cfg, schedule, device)
        tag, s, worse_steps = f"{precision}_{where}", cfg.sample, min(cfg.sweep.nfe)
        where = "models/" + schedule if where == "main" else "trained by this benchmark (.cache/verdict_rates/)"
        setup |= {"shift": shift, "model": f"{schedule}, {cfg.train.steps} training steps, {precision}, {where}",
                  "pools": {
            "a_b": f"{MODEL_POOL} images, {s.sampler} at {s.steps} steps ({s.spacing})",
            "shifted": f"{WORSE_POOL} images, ddpm at {worse_steps} steps ({cfg.sweep.spacing})"}}
    else:
        evaluated = json.loads((ROOT / "metrics" / "evaluate.json").read_text())
        target = float(np.median([evaluated[name]["fid"] for name in cfg.schedule]))
        scale = pool_real.std(0)
        setup |= {"shift": shift, "target_fid": target}
    needed = n if shift == "model" else 3 * n  # the reference, and A and B unless they are the model's
    if needed > len(pool_real):
        raise SystemExit(f"N = {n} needs {needed} real features; have {len(pool_real)} (--real {real})")
    rng = np.random.default_rng((cfg.seed, 9300))
    path = results_path(n, shift, schedule)
    # Resumable: the trials of an earlier run with the same setup are kept, and the random draws replayed, so a
    # run stopped after k trials and resumed gives what one run would have.
    earlier = earlier_trials(path, setup, restart)
    rows, seconds = (list(earlier["trials_detail"]), earlier["seconds"]) if earlier else ([], 0.0)
    level = earlier.get("noise_level")
    if shift == "model":  # after the check: sampling and Inception are the expensive part (cached)
        pool_gen = model_features(cfg, schedule, model, tag, s.sampler, s.steps, s.spacing, s.sigma_max,
                                  MODEL_POOL, cfg.seed + 9500, device)
        pool_worse = model_features(cfg, schedule, model, tag, "ddpm", worse_steps, cfg.sweep.spacing,
                                    cfg.sweep.sigma_max, WORSE_POOL, cfg.seed + 9600, device)
    t0 = time.perf_counter()
    for trial in range(trials):
        perm = rng.permutation(len(pool_real))
        ref, a, b = (pool_real[perm[i * n:(i + 1) * n]] for i in range(3))
        if shift == "model":  # A and B: disjoint draws from the model's pool; R stays real
            order = rng.permutation(len(pool_gen))
            a, b = pool_gen[order[:n]], pool_gen[order[n:2 * n]]
            sets = {"a": a, "b": b, **replaced(b, pool_worse, rng)}
        elif shift == "generated":
            sets = {"a": a, "b": b, **replaced(b, pool_gen, rng)}
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
