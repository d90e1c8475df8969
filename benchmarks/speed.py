"""Speed side by side: this project's U-Net against diffusers' and denoising-diffusion-pytorch's (issue 10).

One run measures, on this machine:

- the fp32 and bf16 2048x2048 matmul rates (best of 5), the yardstick for every FLOP rate below;
- per model and precision (fp32; bf16 autocast where the CPU has native bf16, or on a GPU): the
  training step of each project's own recipe and one step of its own ancestral sampler, batch 64 of
  1x28x28 images, as images/s (median of ``--repeats`` timings of ``--steps`` steps, after warm-up),
  with forward FLOPs per image from ``torch.utils.flop_counter`` (attention included), training
  FLOPs taken as 3 x forward, and the training FLOP rate as a fraction of the matmul rate;
- Inception features for FID: ``ddpm_study.metrics.inception_features`` against torch-fidelity's
  own extractor called as its API builds it (batch 64, grayscale repeated to RGB), images/s and
  the largest feature difference.

The models:
- ``ours-peer``: this project's U-Net at the peers' size (base 32, mults 1-2-4, 2 res blocks, one
  attention block in the middle); ``ours-default``: the model ``params.yaml`` trains;
- ``diffusers``: ``UNet2DModel`` with the same widths, blocks and mid attention (the same parameter
  count and FLOPs as ``ours-peer``), trained as diffusers' ``train_unconditional.py`` does
  (``DDPMScheduler.add_noise``, MSE on eps, AdamW, grad clip 1, ``EMAModel``), sampled with
  ``DDPMScheduler.step`` on 100 steps;
- ``ddp``: denoising-diffusion-pytorch's ``Unet(32, (1, 2, 4))`` in its ``GaussianDiffusion`` (its
  defaults: pred-v, sigmoid schedule), trained as its ``Trainer`` does (Adam, grad clip 1, EMA
  every 10 steps), sampled with its ``p_sample``.

Peers come with ``pip install -e .[bench]``; without them only this project's rows are measured.
Run from the project root: ``python benchmarks/speed.py`` (several minutes on 2 cores); writes
``benchmarks/speed.json`` and prints the tables of ``benchmarks/README.md``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import typer
import yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from ddpm_study import metrics, schedules, training  # noqa: E402
from ddpm_study.config import ModelConfig  # noqa: E402
from ddpm_study.diffusion import GaussianDiffusion  # noqa: E402
from ddpm_study.runtime import autocast, bf16_supported  # noqa: E402

BATCH, SHAPE, T, SAMPLE_STEPS = 64, (1, 28, 28), 1000, 100


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(dtype: torch.dtype, device: torch.device, n: int = 2048) -> float:
    """Best-of-5 GFLOP/s of an n x n matmul."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for i in range(7):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        if i >= 2:
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def images_per_s(step: Callable[[], None], device: torch.device, steps: int, repeats: int) -> float:
    """Median over ``repeats`` of BATCH * steps / seconds, after two warm-up steps."""
    for _ in range(2):
        step()
    rates = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        rates.append(BATCH * steps / (time.perf_counter() - start))
    return statistics.median(rates)


def forward_flops(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], device: torch.device) -> float:
    """FLOPs of one image's forward pass (flop_counter: convolutions, matmuls and attention)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        forward(torch.zeros(1, *SHAPE, device=device), torch.tensor([T // 2], device=device))
    return counter.get_total_flops()


def batch(device: torch.device) -> torch.Tensor:
    return torch.rand(BATCH, *SHAPE, device=device) * 2 - 1


# Each peer: () -> dict(params, flops, train (a no-arg training step), sample (one sampler step on a
# batch)), built under the precision's autocast context ``amp``.

def ours(model_cfg: ModelConfig, device: torch.device, amp: Callable[[], contextlib.AbstractContextManager]) -> dict:
    """The project's own training step (training.train's body) and DDPM ancestral step on 100 respaced steps."""
    model = training.build_model(model_cfg, SHAPE[0]).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    diffusion = GaussianDiffusion(schedules.get_betas("linear", T, beta_start=1e-4, beta_end=0.02))
    spaced = diffusion.respace(SAMPLE_STEPS)
    x0 = batch(device)

    def train_step():
        t = torch.randint(0, T, (BATCH,), device=device)
        with amp():
            loss = diffusion.training_losses(model, x0, t, torch.randn_like(x0)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        training.ema_update(ema, model, 0.995)

    x_t, t_mid = torch.randn_like(x0), torch.full((BATCH,), SAMPLE_STEPS // 2, device=device)

    @torch.inference_mode()
    def sample_step():
        with amp():
            spaced.p_sample(ema.eval(), x_t, t_mid, torch.randn_like(x_t))

    return {"params": sum(p.numel() for p in model.parameters()), "flops": forward_flops(model, device),
            "train": train_step, "sample": sample_step}


def diffusers_unet(device: torch.device, amp) -> dict:
    from diffusers import DDPMScheduler, UNet2DModel
    from diffusers.training_utils import EMAModel

    model = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64, 128),
                        layers_per_block=2, down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
                        norm_num_groups=8).to(device)
    ema = EMAModel(model.parameters(), decay=0.995)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = DDPMScheduler(num_train_timesteps=T)
    x0 = batch(device)

    def train_step():
        noise = torch.randn_like(x0)
        t = torch.randint(0, T, (BATCH,), device=device)
        with amp():
            pred = model(scheduler.add_noise(x0, noise, t), t).sample
            loss = F.mse_loss(pred.float(), noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        ema.step(model.parameters())

    sampler = DDPMScheduler(num_train_timesteps=T)
    sampler.set_timesteps(SAMPLE_STEPS)
    x_t, t_mid = torch.randn_like(x0), sampler.timesteps[SAMPLE_STEPS // 2]

    @torch.inference_mode()
    def sample_step():
        with amp():
            out = model(x_t, t_mid).sample
        sampler.step(out.float(), t_mid, x_t)

    return {"params": sum(p.numel() for p in model.parameters()),
            "flops": forward_flops(lambda x, t: model(x, t).sample, device), "train": train_step, "sample": sample_step}


def ddp_unet(device: torch.device, amp) -> dict:
    from denoising_diffusion_pytorch import GaussianDiffusion as DDPGaussianDiffusion, Unet
    from ema_pytorch import EMA

    unet = Unet(dim=32, dim_mults=(1, 2, 4), channels=1)
    diffusion = DDPGaussianDiffusion(unet, image_size=28, timesteps=T).to(device)
    ema = EMA(diffusion, beta=0.995, update_every=10)
    optimizer = torch.optim.Adam(diffusion.parameters(), lr=1e-4, betas=(0.9, 0.99))
    data = (batch(device) + 1) / 2  # its GaussianDiffusion takes [0, 1] images and normalises them itself

    def train_step():
        with amp():
            loss = diffusion(data)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        ema.update()

    x_t = torch.randn_like(data)

    @torch.inference_mode()
    def sample_step():
        with amp():
            diffusion.p_sample(x_t, T // 2)

    return {"params": sum(p.numel() for p in unet.parameters()), "flops": forward_flops(unet, device),
            "train": train_step, "sample": sample_step}


def inception(device: torch.device, repeats: int, n: int) -> dict:
    """Ours against torch-fidelity's extractor on the same n grayscale images (its default batch, 64)."""
    images = torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    reference = metrics.reference_extractor(device)

    def theirs():
        with torch.no_grad():
            return torch.cat([reference(b.expand(-1, 3, -1, -1).to(device))[0].cpu() for b in images.split(64)])

    def ours_():
        return metrics.inception_features(images, 64, device)

    out = {}
    for name, fn in (("torch-fidelity", theirs), ("ours", ours_)):
        fn()  # warm-up (and the features compared below)
        times = []
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            feats = fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
        out[name] = {"images_per_s": n / statistics.median(times), "features": feats}
    diff = (out["ours"].pop("features") - out["torch-fidelity"]["features"]).abs().max()
    scale = out["torch-fidelity"].pop("features").abs().max()
    return {**out, "images": n, "max_abs_diff": float(diff), "max_rel_diff": float(diff / scale),
            "speedup": out["ours"]["images_per_s"] / out["torch-fidelity"]["images_per_s"]}


def main(
    out: Path = typer.Option(ROOT / "benchmarks" / "speed.json", help="JSON results"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    steps: int = typer.Option(3, help="training/sampling steps per timing"),
    repeats: int = typer.Option(3, help="timings per measurement (the median is kept)"),
    inception_images: int = typer.Option(128, help="images for the Inception comparison; 0 = leave it out"),
) -> None:
    dev = torch.device(device)
    torch.manual_seed(0)
    precisions = {"fp32": lambda: autocast("fp32", dev)}
    if bf16_supported(dev):
        precisions["bf16"] = lambda: autocast("bf16", dev)
    model = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]
    default_cfg = ModelConfig(**{**model, "channel_mults": tuple(model["channel_mults"])})
    peer_cfg = ModelConfig(**{**default_cfg.__dict__, "base_channels": 32, "channel_mults": (1, 2, 4), "num_res_blocks": 2,
                              "attention_heads": 4, "norm_groups": 8, "num_classes": 0})
    models = {"ours-peer": lambda amp: ours(peer_cfg, dev, amp), "ours-default": lambda amp: ours(default_cfg, dev, amp)}
    for name, builder, module in (("diffusers", diffusers_unet, "diffusers"), ("ddp", ddp_unet, "denoising_diffusion_pytorch")):
        try:
            __import__(module)
            models[name] = lambda amp, b=builder: b(dev, amp)
        except ImportError:
            print(f"{module} not installed (pip install -e .[bench]): {name} left out", file=sys.stderr)

    result = {
        "machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
                    "native_bf16": bf16_supported(dev)},
        "setting": {"batch": BATCH, "image": list(SHAPE), "steps": steps, "repeats": repeats, "train_flops": "3 x forward"},
        "matmul_gflops": {p: matmul_rate(torch.float32 if p == "fp32" else torch.bfloat16, dev) for p in precisions},
        "models": {},
    }
    for name, build in models.items():
        for precision, amp in precisions.items():
            parts = build(amp)
            row = {"params": parts["params"], "forward_gflop_per_image": parts["flops"] / 1e9,
                   "train_images_per_s": images_per_s(parts["train"], dev, steps, repeats),
                   "sample_images_steps_per_s": images_per_s(parts["sample"], dev, steps, repeats)}
            row["train_fraction_of_matmul"] = 3 * parts["flops"] * row["train_images_per_s"] / 1e9 / result["matmul_gflops"][precision]
            result["models"][f"{name} {precision}"] = row
            print(f"{name:14s} {precision}: {row['train_images_per_s']:7.1f} train img/s, "
                  f"{row['sample_images_steps_per_s']:7.1f} sample img*step/s", file=sys.stderr, flush=True)
    if inception_images:
        result["inception"] = inception(dev, repeats, inception_images)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


def table(result: dict) -> str:
    m = result["machine"]
    lines = [f"{m['cpu']} ({m['device']}), {m['threads']} threads, torch {m['torch']}; batch {result['setting']['batch']}, "
             f"1x28x28; matmul " + ", ".join(f"{p} {r:.1f} GFLOP/s" for p, r in result["matmul_gflops"].items()), "",
             "| model | precision | params | forward GFLOP/img | train img/s | sample img·step/s | train FLOP rate / matmul rate |",
             "|---|---|---|---|---|---|---|"]
    for key, row in result["models"].items():
        name, precision = key.rsplit(" ", 1)
        lines.append(f"| {name} | {precision} | {row['params'] / 1e6:.2f} M | {row['forward_gflop_per_image']:.3f} | "
                     f"{row['train_images_per_s']:.1f} | {row['sample_images_steps_per_s']:.0f} | {row['train_fraction_of_matmul']:.0%} |")
    rows = result["models"]
    for precision in result["matmul_gflops"]:
        if f"diffusers {precision}" in rows:
            ours_, theirs = rows[f"ours-peer {precision}"], rows[f"diffusers {precision}"]
            lines.append(f"\nours-peer / diffusers, both {precision}: train {ours_['train_images_per_s'] / theirs['train_images_per_s']:.2f}x, "
                         f"sample {ours_['sample_images_steps_per_s'] / theirs['sample_images_steps_per_s']:.2f}x")
    if "bf16" in result["matmul_gflops"] and "diffusers fp32" in rows:
        ours_, theirs = rows["ours-peer bf16"], rows["diffusers fp32"]
        lines.append(f"ours-peer bf16 / diffusers fp32 (each as shipped): train {ours_['train_images_per_s'] / theirs['train_images_per_s']:.2f}x, "
                     f"sample {ours_['sample_images_steps_per_s'] / theirs['sample_images_steps_per_s']:.2f}x")
    if "inception" in result:
        inc = result["inception"]
        lines.append(f"\nInception features ({inc['images']} gray 28x28 images): torch-fidelity {inc['torch-fidelity']['images_per_s']:.2f} img/s, "
                     f"ours {inc['ours']['images_per_s']:.2f} img/s ({inc['speedup']:.2f}x); largest difference "
                     f"{inc['max_abs_diff']:.1e} ({inc['max_rel_diff']:.1e} of the largest feature)")
    return "\n".join(lines)


if __name__ == "__main__":
    typer.run(main)
