"""Stage `prepare`: the official data set files -> uint8 arrays in data/prepared."""

from __future__ import annotations

import numpy as np

from ddpm_study import data
from ddpm_study.config import StudyConfig
from ddpm_study.files import atomic_path, write_json

from . import paths
from .ui import console


def save_array(path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)


def load_array(path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def run(cfg: StudyConfig) -> None:
    splits = data.locate_and_load(cfg.data.dataset, paths.RAW_DIR, cfg.data.source_dir, cfg.data.download)
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        save_array(paths.prepared_array(name), getattr(splits, name))
    info = {
        "dataset": cfg.data.dataset,
        "source": splits.source,
        "train_images": list(splits.train_images.shape),
        "test_images": list(splits.test_images.shape),
    }
    write_json(paths.PREPARED_INFO, info)
    console.print(f"prepared {cfg.data.dataset} from {splits.source}: train {info['train_images']}, test {info['test_images']}")
