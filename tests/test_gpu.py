"""The CUDA path (`device: cuda` / `auto` on a GPU machine): training, sampling and Inception features
on the GPU agree with the CPU. Marked `gpu`; on a machine without CUDA they are reported as skipped
(conftest.py), and `python -m pytest -m gpu` runs them alone on a GPU machine."""

import pytest
import torch

from conftest import tiny_params
from ddpm_study import metrics, sampling, training
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.runtime import resolve_device
from pipeline import lineage

pytestmark = pytest.mark.gpu


def train_on(device: torch.device, tmp_path):
    cfg = StudyConfig.from_dict(tiny_params())
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return training.train(schedule="linear", diffusion=GaussianDiffusion(cfg.betas("linear")), images=images,
                          model_cfg=cfg.model, train_cfg=cfg.train, seed=cfg.seed,
                          lineage=lineage.training(cfg, "linear"), device=device,
                          checkpoint_path=tmp_path / f"{device.type}.pt")


def test_auto_picks_the_gpu():
    assert resolve_device("auto").type == "cuda" and resolve_device("cuda").type == "cuda"


def test_training_on_the_gpu_follows_the_cpu_loss_curve(tmp_path):
    """The data order is the same, but the noise generator lives on the device, so t and eps come from
    CUDA's stream: the curves agree in level, not value. A finished checkpoint is reused on the GPU too."""
    gpu = train_on(torch.device("cuda"), tmp_path)
    cpu = train_on(torch.device("cpu"), tmp_path)
    assert gpu.state["step"] == 8 and all(torch.isfinite(v).all() for v in gpu.state["ema"].values())
    g = [r["loss"] for r in gpu.history]
    c = [r["loss"] for r in cpu.history]
    assert abs(sum(g) / len(g) - sum(c) / len(c)) < 0.5 * sum(c) / len(c)
    again = train_on(torch.device("cuda"), tmp_path)  # the finished checkpoint is returned as is
    assert again.resumed_from == 8


def test_sampling_on_the_gpu_is_reproducible_and_finite(tmp_path):
    state = train_on(torch.device("cuda"), tmp_path).state
    model = training.load_ema_model(state, torch.device("cuda"))
    diffusion = GaussianDiffusion(StudyConfig.from_dict(tiny_params()).betas("linear")).respace(4)
    kw = dict(num_images=8, batch_size=4, image_shape=(1, 28, 28), seed=0, device=torch.device("cuda"), sampler="ddim",
              eta=0.0, trajectory_images=2, trajectory_frames=3)
    a = sampling.generate(model, diffusion, **kw)
    b = sampling.generate(model, diffusion, **kw)
    assert a.images.shape == (8, 1, 28, 28) and a.images.dtype == torch.uint8
    assert (a.images.int() - b.images.int()).abs().max() <= 1  # cuDNN may round differently, never more


def test_inception_features_on_the_gpu_equal_the_cpu(torch_home):
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cpu = metrics.inception_features(images, 4, torch.device("cpu"))
    gpu = metrics.inception_features(images, 4, torch.device("cuda"))
    assert (gpu - cpu).abs().max() <= 1e-3 * cpu.abs().max()
