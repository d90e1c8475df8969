"""Shared test helpers: the project root, a tiny configuration, and where the real files live."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
INCEPTION_WEIGHTS = "hub/checkpoints/weights-inception-2015-12-05-6726825d.pth"


def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def tiny_params() -> dict:
    """A configuration that runs every stage in about a minute on 2 CPU cores."""
    p = copy.deepcopy(default_params())
    p["data"]["train_subset"] = 512
    p["model"].update(base_channels=8, channel_mults=[1, 2], attention_heads=2, norm_groups=4)
    p["train"].update(steps=8, batch_size=16, log_every=2, checkpoint_every=4, warmup_steps=2)
    p["sample"].update(steps=4, num_images=24, batch_size=12, grid_images=4, gif_frames=3)
    p["evaluate"].update(batch_size=24, kid_subset_size=12, kid_subsets=5)
    return p


@pytest.fixture(scope="session")
def torch_home() -> Path:
    """TORCH_HOME holding the Inception weights; the tests that need them fail (not skip) without."""
    home = Path(os.environ.get("TORCH_HOME", ""))
    if not (home / INCEPTION_WEIGHTS).is_file():
        pytest.fail(f"TORCH_HOME={home!s} lacks {INCEPTION_WEIGHTS}; export TORCH_HOME=../shared/torch-home")
    return home


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{FASHION_MNIST_DIR} is empty; apt-get install -y dataset-fashion-mnist")
    return FASHION_MNIST_DIR
