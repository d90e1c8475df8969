"""Stage `evaluate`: FID and KID of each schedule's samples, with spreads, floor and ceilings.

Every FID carries a jackknife std (groups of generated and of reference features left out;
schedules paired by their shared initial noise), every pair of schedules a paired difference and
whether it is within noise, and the table is bracketed by the real-vs-real floor and two
trivially bad generators at the same N. The `score_sweep` stage reuses these functions at its N.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import torch

from ddpm_study import baselines, metrics, uncertainty
from ddpm_study.config import StudyConfig
from ddpm_study.files import write_json
from ddpm_study.runtime import resolve_device

from . import paths, tracking
from .prepare import load_array
from .ui import console


def scores(cfg: StudyConfig, features: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Point FID (the exact fast form, equal to torch-fidelity's) and torch-fidelity's KID (mean, std over subsets)."""
    e = cfg.evaluate
    kid_mean, kid_std = metrics.kid(torch.from_numpy(features), torch.from_numpy(reference), e.kid_subset_size,
                                    e.kid_subsets, cfg.seed)
    return {"fid": uncertainty.frechet_distance(features, reference), "kid_mean": kid_mean, "kid_std": kid_std}


# Fixed, independent group assignments per use (numpy seeds from the pair (seed, stream)).
FLOOR_STREAM, EVALUATE_STREAM, CEILING_STREAM, SWEEP_STREAMS = 0, 1, 2, 100


def _seed(cfg: StudyConfig, stream: int) -> tuple[int, int]:
    return cfg.seed, stream


def with_spreads(cfg: StudyConfig, generated: dict[str, np.ndarray], reference: np.ndarray, stream: int = EVALUATE_STREAM) -> dict:
    """Scores of paired generated sets with their jackknife stds, and every pairwise difference."""
    jack = uncertainty.jackknife_fid(reference, generated, cfg.evaluate.jackknife_groups, _seed(cfg, stream))
    out: dict = {name: {**scores(cfg, feats, reference), "fid_std": uncertainty.jackknife_std(jack[name])}
                 for name, feats in generated.items()}
    out["pairs"] = {
        f"{a}-{b}": uncertainty.compare(out[a]["fid"], out[b]["fid"], jack[a], jack[b])
        for a, b in combinations(generated, 2)
    }
    return out


def real_vs_real(cfg: StudyConfig, floor: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The floor: a second real split scored like a generator, with its jackknife std."""
    jack = uncertainty.jackknife_fid(reference, {"floor": floor}, cfg.evaluate.jackknife_groups, _seed(cfg, FLOOR_STREAM))
    return {**scores(cfg, floor, reference), "fid_std": uncertainty.jackknife_std(jack["floor"])}


def ceilings(cfg: StudyConfig, num_images: int, reference: np.ndarray, device: torch.device) -> dict:
    """FID/KID of two trivially bad generators at ``num_images``: Gaussian noise and the mean image."""
    train = load_array(paths.prepared_array("train_images"))
    noise = metrics.inception_features(baselines.gaussian_noise(num_images, cfg.image_shape, cfg.seed),
                                       cfg.evaluate.batch_size, device).numpy()
    # One image repeated: its features are one vector repeated, so extract it once.
    mean = metrics.inception_features(baselines.mean_image(train, 1), 1, device).numpy()
    generated = {"gaussian_noise": noise, "mean_image": np.repeat(mean, num_images, axis=0)}
    jack = uncertainty.jackknife_fid(reference, generated, cfg.evaluate.jackknife_groups, _seed(cfg, CEILING_STREAM))
    return {name: {**scores(cfg, feats, reference), "fid_std": uncertainty.jackknife_std(jack[name])}
            for name, feats in generated.items()}


def run(cfg: StudyConfig) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = resolve_device(cfg.device)
    reference = load_array(paths.REFERENCE_FEATURES)
    floor = load_array(paths.FLOOR_FEATURES)
    generated = {}
    for name in cfg.schedule:
        images = torch.from_numpy(load_array(paths.sample_images(name)))
        console.print(f"Inception features of {name} samples ({len(images)} images)")
        generated[name] = metrics.inception_features(images, cfg.evaluate.batch_size, device).numpy()
    console.print(f"jackknife ({cfg.evaluate.jackknife_groups} groups) and trivial generators")
    results = {"num_images": cfg.sample.num_images, "jackknife_groups": cfg.evaluate.jackknife_groups,
               "real_vs_real": real_vs_real(cfg, floor, reference), **with_spreads(cfg, generated, reference),
               "ceilings": ceilings(cfg, cfg.sample.num_images, reference, device)}
    floor_fid = results["real_vs_real"]["fid"]
    for name in cfg.schedule:
        r = results[name]
        with tracking.schedule_run(cfg, name, "evaluate") as run:
            run.log_metrics({**r, "fid_real_vs_real": floor_fid, "num_images": cfg.sample.num_images})
        console.print(f"{name}: FID {r['fid']:.2f} ± {r['fid_std']:.2f}  KID {r['kid_mean']:.4f} "
                      f"(real-vs-real FID {floor_fid:.2f})")
    write_json(paths.EVALUATE_METRICS, results)
