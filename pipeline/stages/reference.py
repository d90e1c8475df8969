"""Stage `reference`: Inception features of two fixed, disjoint real splits, computed once.

Split A is what every schedule's samples are compared with; FID(A, B) at the same N is the
real-vs-real floor: the score a perfect generator would get with this many images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ddpm_study import data, metrics
from ddpm_study.config import StudyConfig
from ddpm_study.runtime import setup_device

from .. import outputs
from ..console import console


def run(cfg: StudyConfig, params: Path) -> None:
    device = setup_device(cfg.device, cfg.reproducible)
    n = cfg.sample.num_images
    images = outputs.read_prepared("train_images")
    idx_ref, idx_floor = data.real_splits(len(images), n, cfg.seed)
    feats = {}
    for split, idx in (("reference", idx_ref), ("floor", idx_floor)):
        console.print(f"Inception features of real split {split!r} ({n} images)")
        feats[split] = metrics.inception_features(torch.from_numpy(images[np.sort(idx)]), cfg.evaluate.batch_size, device).numpy()
    outputs.write_reference(
        outputs.Reference(feats["reference"], feats["floor"]),
        outputs.ReferenceInfo(num_images=n, feature_extractor=metrics.FEATURE_EXTRACTOR,
                              feature_layer=metrics.FEATURE_LAYER, split_seed=cfg.seed),
    )
