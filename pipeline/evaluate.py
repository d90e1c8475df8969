"""Stage `evaluate`: FID and KID of each schedule's samples against the fixed real split."""

from __future__ import annotations

import torch

from ddpm_study import metrics
from ddpm_study.config import StudyConfig
from ddpm_study.files import write_json
from ddpm_study.runtime import resolve_device

from . import paths, tracking
from .prepare import load_array
from .ui import console


def scores(cfg: StudyConfig, features: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    e = cfg.evaluate
    kid_mean, kid_std = metrics.kid(features, reference, e.kid_subset_size, e.kid_subsets, cfg.seed)
    return {"fid": metrics.fid(features, reference), "kid_mean": kid_mean, "kid_std": kid_std}


def run(cfg: StudyConfig) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = resolve_device(cfg.device)
    reference = torch.from_numpy(load_array(paths.REFERENCE_FEATURES))
    floor = scores(cfg, torch.from_numpy(load_array(paths.FLOOR_FEATURES)), reference)
    results = {"num_images": cfg.sample.num_images, "real_vs_real": floor}
    for name in cfg.schedule:
        images = torch.from_numpy(load_array(paths.sample_images(name)))
        console.print(f"Inception features of {name} samples ({len(images)} images)")
        with tracking.schedule_run(cfg, name, "evaluate") as run:
            result = scores(cfg, metrics.inception_features(images, cfg.evaluate.batch_size, device), reference)
            run.log_metrics({**result, "fid_real_vs_real": floor["fid"], "num_images": len(images)})
        results[name] = result
        console.print(f"{name}: FID {result['fid']:.2f}  KID {result['kid_mean']:.4f} (real-vs-real FID {floor['fid']:.2f})")
    write_json(paths.EVALUATE_METRICS, results)
