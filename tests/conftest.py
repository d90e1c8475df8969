"""Shared test helpers: the project root, a tiny configuration, and where the real files live."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
INCEPTION_WEIGHTS = "hub/checkpoints/weights-inception-2015-12-05-6726825d.pth"


def default_params(extended: bool = False) -> dict:
    """params.yaml as committed: the study's sections (what ``StudyConfig`` takes), with ``extended`` the
    extended study's section too (what a params file the `check` gate passes needs)."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    return p if extended else {k: v for k, v in p.items() if k != "extended"}


def tiny_params() -> dict:
    """A configuration that runs every stage in about a minute on 2 CPU cores."""
    p = copy.deepcopy(default_params())
    p["data"]["train_subset"] = 512
    p["model"].update(base_channels=8, channel_mults=[1, 2], attention_heads=2, norm_groups=4)
    p["train"].update(steps=8, batch_size=16, log_every=2, checkpoint_every=4, warmup_steps=2)
    p["sample"].update(steps=4, num_images=24, batch_size=12, grid_images=4, gif_frames=3)
    p["evaluate"].update(batch_size=24, kid_subset_size=12, kid_subsets=5, jackknife_groups=6)
    p["sweep"].update(samplers=["ddim"], nfe=[2], baseline_nfe=0, num_images=12, batch_size=12)  # the e2e test sweeps more
    p["likelihood"].update(images=8, strata=5, batch_size=4)  # two batches: the generator carries across them
    return p


def tiny_extended() -> dict:
    """The extended study's section for ``tiny_params``: two seeds, the 4 x 4 grid, a 2x longer run."""
    return {"seeds": {"count": 2, "schedules": ["linear", "cosine"]},
            "longer": {"schedule": "linear", "snapshots": [4, 8, 16]},  # 8 = train.steps: the main study's model
            "cross": {"samplers": ["ddpm", "ddim"], "steps": [2]}}


def pytest_collection_modifyitems(config, items):
    """Files with the most `slow` tests run first (so that with ``-n 2 --dist loadfile`` the long files
    start at once and the short ones fill in behind them); `gpu` tests need CUDA: without it they are
    reported as skipped, with the reason and how to run them."""
    import torch

    slow = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + ("slow" in item.keywords)
    items.sort(key=lambda item: -slow[item.path])  # stable: each file keeps its own order
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here); run `python -m pytest -m gpu` on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny U-Net trained for 40 steps on random 28x28 images (EMA weights, eval mode): the model the checks
    against diffusers (DDIM, DPM-Solver++, Heun) share."""
    import torch

    from ddpm_study import training
    from ddpm_study.config import StudyConfig
    from ddpm_study.diffusion import GaussianDiffusion
    from pipeline import lineage

    p = tiny_params()
    p["train"].update(steps=40, log_every=10, checkpoint_every=40, ema_decay=0.9)
    cfg = StudyConfig.from_dict(p)
    images = torch.randint(0, 256, (128, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    result = training.train(schedule="linear", diffusion=GaussianDiffusion(cfg.betas("linear")), images=images,
                            model_cfg=cfg.model, train_cfg=cfg.train, seed=0, lineage=lineage.training(cfg, "linear"),
                            device=torch.device("cpu"), checkpoint_path=tmp_path_factory.mktemp("m") / "c.pt")
    return cfg, training.load_ema_model(result.state, torch.device("cpu"))


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


# --- helpers for the tests that run the real pipeline in a temporary repository ----------------
PROJECT_FILES = ["dvc.yaml", "extended/dvc.yaml", "pyproject.toml", ".gitignore", ".dvcignore", ".dvc/config", "dvc_plots", "src",
                 "pipeline", "benchmarks/spread_vs_redraws.json", "benchmarks/ddim_variants.json",
                 "benchmarks/verdict_rates_n2000.json"]


def sh(cmd, cwd, env=None, check=True):
    out = subprocess.run(cmd, cwd=cwd, env=env, shell=True, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"`{cmd}` failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def make_repo(repo: Path, params: dict, torch_home: Path) -> tuple[Path, dict]:
    """A fresh git + DVC repository holding the project with ``params`` (and ``tiny_extended`` unless
    ``params`` has an ``extended`` section); MLflow will live at its root."""
    import yaml

    repo.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, repo / name)
    params = {**params, "extended": params.get("extended", tiny_extended())}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    # The stages run the repository's own copy of the code (what DVC hashes), not the installed one.
    env.update(PYTHONPATH=os.pathsep.join([str(repo / "src"), str(repo)]), TORCH_HOME=str(torch_home), GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@localhost",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost")
    sh("git init -q && git add -A && git commit -qm init", repo, env)
    return repo, env


def mlflow_runs(repo: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ddpm-schedules")
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def run_queue(repo: Path, env: dict, jobs: int, timeout_s: float = 900) -> str:
    """`dvc queue start -j jobs`, wait until nothing is queued or running, stop the workers; the final status."""
    import time

    sh(f"dvc queue start -j {jobs}", repo, env)
    deadline = time.time() + timeout_s
    while True:
        status = sh("dvc queue status", repo, env).stdout
        if "Running" not in status and "Queued" not in status:
            break
        assert time.time() < deadline, status
        time.sleep(5)
    sh("dvc queue stop", repo, env, check=False)
    return status
