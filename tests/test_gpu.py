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


# --- what the review of the CUDA path found untested (issue 27) -------------------------------------
from ddpm_study import runtime  # noqa: E402
from ddpm_study.samplers import REGISTRY, SAMPLERS, sample_loop  # noqa: E402

CUDA = torch.device("cuda")


@pytest.fixture
def reproducible():
    """The study's default on CUDA: deterministic kernels, TF32 off (``runtime.make_reproducible``); undone after."""
    runtime.make_reproducible(CUDA, True)
    yield
    runtime.make_reproducible(CUDA, False)


def trained_state(tmp_path, device=CUDA, **train):
    p = tiny_params()
    p["train"].update(train)
    cfg = StudyConfig.from_dict(p)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    kw = dict(schedule="linear", diffusion=GaussianDiffusion(cfg.betas("linear")), images=images, model_cfg=cfg.model,
              train_cfg=cfg.train, seed=cfg.seed, lineage=lineage.training(cfg, "linear"), device=device)
    return cfg, kw


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_on_cuda(tmp_path, reproducible, sampler):
    """Deterministic samplers give the CPU's samples from the same x_T (TF32 off: fp32 round-off only); stochastic
    ones draw CUDA's noise stream, so they are checked for range and for being bit-identical run to run."""
    cfg, kw = trained_state(tmp_path)
    state = training.train(**kw, checkpoint_path=tmp_path / "c.pt").state
    spaced = GaussianDiffusion(cfg.betas("linear")).respace(5)
    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    runs = []
    for device in (CUDA, CUDA, torch.device("cpu")):
        model = training.load_ema_model(state, device)
        x, _ = sample_loop(spaced, model, x_T.to(device), torch.Generator(device=device).manual_seed(2), sampler=sampler)
        runs.append(x.cpu())
    assert torch.isfinite(runs[0]).all() and torch.equal(runs[0], runs[1])
    if not REGISTRY[sampler].stochastic:
        assert (runs[0] - runs[2]).abs().max() < 1e-3


def test_conditional_and_guided_sampling_on_cuda(tmp_path, reproducible):
    p = tiny_params()
    p["model"]["num_classes"] = 10
    p["sample"]["num_images"] = 20
    cfg = StudyConfig.from_dict(p)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 10
    state = training.train(schedule="cosine", diffusion=GaussianDiffusion(cfg.betas("cosine")), images=images,
                           labels=labels, model_cfg=cfg.model, train_cfg=cfg.train, seed=0,
                           lineage=lineage.training(cfg, "cosine"), device=CUDA, checkpoint_path=tmp_path / "c.pt").state
    model = training.load_ema_model(state, CUDA)
    spaced = GaussianDiffusion(cfg.betas("cosine")).respace(4)
    kw = dict(num_images=10, batch_size=5, image_shape=(1, 28, 28), seed=0, device=CUDA, sampler="ddpm", eta=0.0,
              trajectory_images=2, trajectory_frames=3, labels=torch.arange(10))
    guided = [sampling.generate(model, spaced, guidance=3.0, **kw).images for _ in range(2)]
    plain = sampling.generate(model, spaced, guidance=0.0, **kw).images
    assert torch.equal(guided[0], guided[1]) and not torch.equal(guided[0], plain)
    grid = sampling.class_grid(model, spaced, per_class=2, image_shape=(1, 28, 28), seed=0, device=CUDA,
                               sampler="ddim", eta=0.0, guidance=1.0)
    assert grid.shape == (20, 1, 28, 28)


def test_resume_on_cuda_is_bit_exact_with_the_switch_on(tmp_path, reproducible):
    """Killed after the step-4 checkpoint and resumed, with dropout on (CUDA's global generator decides the masks)."""
    p_cfg, kw = trained_state(tmp_path)
    kw["model_cfg"] = type(kw["model_cfg"])(**{**kw["model_cfg"].__dict__, "dropout": 0.1})
    full = training.train(**kw, checkpoint_path=tmp_path / "full.pt").state

    class Kill(Exception):
        pass

    def kill(step):
        if step == 6:
            raise Kill

    with pytest.raises(Kill):
        training.train(**kw, checkpoint_path=tmp_path / "killed.pt", on_step=kill)
    resumed = training.train(**kw, checkpoint_path=tmp_path / "killed.pt")
    assert resumed.resumed_from == 4
    for key in ("model", "ema"):
        assert all(torch.equal(full[key][n], resumed.state[key][n]) for n in full[key])


def test_features_match_the_cpu_with_tf32_off(torch_home, reproducible):
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cpu = metrics.inception_features(images, 8, torch.device("cpu"))
    gpu = metrics.inception_features(images, 8, CUDA)
    assert (gpu - cpu).abs().max() <= 1e-5 * cpu.abs().max()


def test_no_host_sync_inside_a_training_step(tmp_path, reproducible):
    """Every step that is not a log step runs under ``torch.cuda.set_sync_debug_mode("error")``: a host sync in it
    (a value read back, a blocking copy) raises. Log steps read the loss and the finiteness flags back: allowed."""
    _, kw = trained_state(tmp_path, steps=12, log_every=6, checkpoint_every=6)

    def on_step(step):  # runs after step `step`; what follows until the next call is step + 1 (and step's logging)
        torch.cuda.set_sync_debug_mode("default" if step % 6 == 0 else "error")

    try:
        training.train(**kw, checkpoint_path=tmp_path / "c.pt", on_step=on_step)
    finally:
        torch.cuda.set_sync_debug_mode("default")
