"""Every path the pipeline reads or writes, relative to the project root, defined once.

``dvc.yaml`` declares the same paths as stage outputs; ``tests/test_paths.py`` checks the two agree.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")
PARAMS_OK = Path("params.ok")  # written by the `check` gate stage; constant content

RAW_DIR = Path("data/raw")  # download cache and copies of the official files (not a DVC output)
PREPARED_DIR = Path("data/prepared")
PREPARED_INFO = PREPARED_DIR / "info.json"
REFERENCE_DIR = Path("data/reference")
REFERENCE_FEATURES = REFERENCE_DIR / "features_reference.npy"  # real split A: what samples are compared to
FLOOR_FEATURES = REFERENCE_DIR / "features_floor.npy"  # real split B: A vs B is the FID floor
REFERENCE_INFO = REFERENCE_DIR / "info.json"

MODELS_DIR = Path("models")
SAMPLES_DIR = Path("samples")
METRICS_DIR = Path("metrics")
TRAIN_METRICS = METRICS_DIR / "train.json"
EVALUATE_METRICS = METRICS_DIR / "evaluate.json"
TRAIN_PLOTS_DIR = Path("plots/train")
SWEEP_DIR = Path("sweep")  # per cell: images, trajectory and Inception features of the step sweep
SWEEP_METRICS = METRICS_DIR / "sweep.json"
SWEEP_PLOTS_DIR = Path("plots/sweep")
REPORTS_DIR = Path("reports")
REPORT = REPORTS_DIR / "README.md"


def prepared_array(name: str) -> Path:
    """name: train_images, train_labels, test_images or test_labels."""
    return PREPARED_DIR / f"{name}.npy"


def checkpoint(schedule: str) -> Path:
    return MODELS_DIR / schedule / "checkpoint.pt"


def train_history(schedule: str) -> Path:
    return TRAIN_PLOTS_DIR / f"{schedule}.tsv"


def sample_dir(schedule: str) -> Path:
    return SAMPLES_DIR / schedule


def sample_images(schedule: str) -> Path:
    return sample_dir(schedule) / "images.npy"


def sample_grid(schedule: str) -> Path:
    return sample_dir(schedule) / "grid.png"


def sample_gif(schedule: str) -> Path:
    return sample_dir(schedule) / "denoising.gif"


def forward_strip(schedule: str) -> Path:
    return sample_dir(schedule) / "forward.png"


def sample_info(schedule: str) -> Path:
    return sample_dir(schedule) / "info.json"


def sweep_array(schedule: str, sampler: str, steps: int, kind: str) -> Path:
    """kind: images, trajectory or features."""
    return SWEEP_DIR / schedule / f"{sampler}_{steps}_{kind}.npy"


def sweep_plot(schedule: str, sampler: str) -> Path:
    return SWEEP_PLOTS_DIR / f"{schedule}_{sampler}.tsv"
