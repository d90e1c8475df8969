"""Stage `evaluate`: FID and KID of each schedule's samples, with spreads, floor and ceilings (``scoring``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ddpm_study import metrics
from ddpm_study.config import StudyConfig
from ddpm_study.runtime import setup_device

from .. import outputs, records, scoring, tracking
from ..console import console


def run(cfg: StudyConfig, params: Path) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = setup_device(cfg.device, cfg.reproducible)
    ref = outputs.read_reference()
    generated = {}
    for name in cfg.schedule:
        images = torch.from_numpy(outputs.read_sample_images(name))
        console.print(f"Inception features of {name} samples ({len(images)} images)")
        generated[name] = metrics.inception_features(images, cfg.evaluate.batch_size, device).numpy()
    console.print(f"jackknife ({cfg.evaluate.jackknife_groups} groups) and trivial generators")
    result = outputs.EvaluateMetrics(
        num_images=cfg.sample.num_images,
        jackknife_groups=cfg.evaluate.jackknife_groups,
        real_vs_real=scoring.real_vs_real(cfg, ref.floor, ref.reference),
        table=scoring.with_spreads(cfg, generated, ref.reference, scoring.EVALUATE_STREAM),
        ceilings=scoring.ceilings(cfg, cfg.sample.num_images, ref.reference, device),
        per_class=scoring.per_class(cfg, generated, ref) if cfg.model.num_classes else None,
    )
    outputs.write_evaluate_metrics(result)
    for name in cfg.schedule:
        with records.schedule_run(cfg, name, "evaluate") as run:
            records.record_evaluate(run, name)
        r = result.table.scores[name]
        console.print(f"{name}: FID {r.fid:.2f} ± {r.fid_std:.2f}  KID {r.kid_mean:.4f} "
                      f"(real-vs-real FID {result.real_vs_real.fid:.2f})")
        if result.per_class is not None:
            console.print(f"{name}: mean per-class FID {result.per_class.mean(name):.2f} "
                          f"(real-vs-real {result.per_class.floor_mean:.2f})")
