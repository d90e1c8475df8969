"""Speed side by side: this project's U-Net against diffusers' and denoising-diffusion-pytorch's (issue 10).

One run measures, on this machine:

- the fp32 and bf16 2048x2048 matmul rates (the best timing over every repeat), the yardstick for
  every FLOP rate below;
- per model and precision (fp32; bf16 autocast where the CPU has native bf16, or on a GPU): the
  training step of each project's own recipe and one step of its own ancestral sampler, batch 64 of
  1x28x28 images, as images/s (the median of ``--repeats`` timings of ``--steps`` steps after warm-up;
  every repeat times every model once, in alternating order, and ratios are medians of each
  repeat's ratio, because these machines drift by 10-30 % over minutes),
  with forward FLOPs per image from ``torch.utils.flop_counter`` (attention included), training
  FLOPs taken as 3 x forward, and the training FLOP rate as a fraction of the matmul rate;
- where the time of a training step goes (CPU, under ``torch.profiler``): the share spent in the
  convolution kernels (oneDNN's, forward and backward) and their own FLOP rate against the matmul
  rate. That is the ceiling no rearrangement outside the convolutions can lift: a step whose
  convolutions already run at the kernels' rate gains at most 1 / share from everything else;
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
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

# oneDNN keeps 1,024 compiled kernels (primitives) by default; the eight models timed in turn here need
# more, and a smaller cache recompiles kernels inside the timings (measured: the default model's bf16
# training 326 img/s with the default cache, 410 with this one). One model, as the pipeline trains,
# needs about a tenth of it. Read when oneDNN starts, so set before torch is imported.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16384")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import typer  # noqa: E402
import yaml  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

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


def images_per_s(step: Callable[[], None], device: torch.device, steps: int) -> float:
    """BATCH * steps / seconds of ``steps`` calls of ``step``."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return BATCH * steps / (time.perf_counter() - start)


def forward_flops(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], device: torch.device) -> dict[str, float]:
    """FLOPs of one image's forward pass (flop_counter: convolutions, matmuls and attention): the total
    and the convolutions' part."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        forward(torch.zeros(1, *SHAPE, device=device), torch.tensor([T // 2], device=device))
    conv = sum(n for op, n in counter.get_flop_counts()["Global"].items() if "convolution" in str(op))
    return {"total": counter.get_total_flops(), "conv": conv}


def convolution_share(step: Callable[[], None], steps: int) -> tuple[float, float]:
    """(share of the wall time of ``steps`` calls of ``step`` spent in convolution kernels, those kernels'
    seconds), measured under torch.profiler on the CPU (the profiler's own overhead counts as non-conv
    time, so the share is a lower bound)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - start
    conv_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key.startswith("aten::") and "conv" in e.key)
    return conv_us / 1e6 / wall, conv_us / 1e6


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
    """Ours against torch-fidelity's extractor on the same n grayscale images (its default batch, 64),
    timed in alternating order like the models."""
    images = torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    reference = metrics.reference_extractor(device)

    def theirs():
        with torch.no_grad():
            return torch.cat([reference(b.expand(-1, 3, -1, -1).to(device))[0].cpu() for b in images.split(64)])

    def ours_():
        return metrics.inception_features(images, 64, device)

    extractors = {"torch-fidelity": theirs, "ours": ours_}
    features = {name: fn() for name, fn in extractors.items()}  # warm-up, and the features compared below
    rates = {name: [] for name in extractors}
    for r in range(repeats):
        for name in (list(extractors) if r % 2 == 0 else list(extractors)[::-1]):
            synchronize(device)
            start = time.perf_counter()
            extractors[name]()
            synchronize(device)
            rates[name].append(n / (time.perf_counter() - start))
    diff = (features["ours"] - features["torch-fidelity"]).abs().max()
    scale = features["torch-fidelity"].abs().max()
    out = {name: {"images_per_s": statistics.median(r), "images_per_s_repeats": r} for name, r in rates.items()}
    return {**out, "images": n, "max_abs_diff": float(diff), "max_rel_diff": float(diff / scale),
            "speedup": ratio(out["ours"], out["torch-fidelity"], "images_per_s")}


def main(
    out: Path = typer.Option(ROOT / "benchmarks" / "speed.json", help="JSON results"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    steps: int = typer.Option(3, help="training/sampling steps per timing"),
    repeats: int = typer.Option(5, help="timing rounds, each timing every model once (medians are kept)"),
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
        "matmul_gflops": {},
        "models": {},
    }
    parts = {}
    for name, build in models.items():
        for precision, amp in precisions.items():
            parts[f"{name} {precision}"] = part = build(amp)
            for _ in range(2):  # warm-up: oneDNN picks and caches its kernels on the first calls
                part["train"](), part["sample"]()
    # The machines this runs on drift by 10-30 % over minutes: every repeat times every model (and the
    # matmul) once, in alternating order, so each model's median and every ratio between models come
    # from the same stretches of time.
    rates = {key: {"train": [], "sample": []} for key in parts}
    matmul = {precision: [] for precision in precisions}
    for r in range(repeats):
        for precision in precisions:
            matmul[precision].append(matmul_rate(torch.float32 if precision == "fp32" else torch.bfloat16, dev))
        for key in (list(parts) if r % 2 == 0 else list(parts)[::-1]):
            for kind in ("train", "sample"):
                rates[key][kind].append(images_per_s(parts[key][kind], dev, steps))
    result["matmul_gflops"] = {precision: max(runs) for precision, runs in matmul.items()}
    for key, part in parts.items():
        precision = key.rsplit(" ", 1)[1]
        rate = result["matmul_gflops"][precision]
        row = {"params": part["params"], "forward_gflop_per_image": part["flops"]["total"] / 1e9,
               "train_images_per_s": statistics.median(rates[key]["train"]),
               "sample_images_steps_per_s": statistics.median(rates[key]["sample"]),
               "train_images_per_s_repeats": rates[key]["train"], "sample_images_steps_per_s_repeats": rates[key]["sample"]}
        row["train_fraction_of_matmul"] = 3 * part["flops"]["total"] * row["train_images_per_s"] / 1e9 / rate
        if dev.type == "cpu":
            share, conv_s = convolution_share(part["train"], 2 * steps)
            row["train_conv_share"] = share
            # Training convolutions: forward + the two backward convolutions (input and weight gradients).
            row["conv_fraction_of_matmul"] = 3 * part["flops"]["conv"] * BATCH * 2 * steps / conv_s / 1e9 / rate
            row["sample_conv_share"] = convolution_share(part["sample"], 2 * steps)[0]
        result["models"][key] = row
        print(f"{key:19s}: {row['train_images_per_s']:7.1f} train img/s, "
              f"{row['sample_images_steps_per_s']:7.1f} sample img*step/s", file=sys.stderr, flush=True)
    if inception_images:
        result["inception"] = inception(dev, repeats, inception_images)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


def ratio(row: dict, other: dict, key: str) -> float:
    """Median over the repeats of row / other, each repeat's pair timed in the same stretch of time."""
    return statistics.median(a / b for a, b in zip(row[f"{key}_repeats"], other[f"{key}_repeats"]))


def table(result: dict) -> str:
    m = result["machine"]
    lines = [f"{m['cpu']} ({m['device']}), {m['threads']} threads, torch {m['torch']}; batch {result['setting']['batch']}, "
             f"1x28x28; matmul " + ", ".join(f"{p} {r:.1f} GFLOP/s" for p, r in result["matmul_gflops"].items()), "",
             "| model | precision | params | forward GFLOP/img | train img/s | sample img·step/s | train FLOP rate / matmul rate "
             "| convolutions' share of a train step | of a sample step | convolutions' own FLOP rate / matmul rate (train) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    pct = lambda row, key: f"{row[key]:.0%}" if key in row else "–"  # noqa: E731 (not profiled on a GPU)
    for key, row in result["models"].items():
        name, precision = key.rsplit(" ", 1)
        lines.append(f"| {name} | {precision} | {row['params'] / 1e6:.2f} M | {row['forward_gflop_per_image']:.3f} | "
                     f"{row['train_images_per_s']:.1f} | {row['sample_images_steps_per_s']:.0f} | {row['train_fraction_of_matmul']:.0%} | "
                     f"{pct(row, 'train_conv_share')} | {pct(row, 'sample_conv_share')} | {pct(row, 'conv_fraction_of_matmul')} |")
    rows = result["models"]
    for precision in result["matmul_gflops"]:
        if f"diffusers {precision}" in rows:
            ours_, theirs = rows[f"ours-peer {precision}"], rows[f"diffusers {precision}"]
            lines.append(f"\nours-peer / diffusers, both {precision}: train {ratio(ours_, theirs, 'train_images_per_s'):.2f}x, "
                         f"sample {ratio(ours_, theirs, 'sample_images_steps_per_s'):.2f}x")
            if "train_conv_share" in ours_:
                lines.append(f"  ceilings if ours did nothing but its convolutions: train "
                             f"{ratio(ours_, theirs, 'train_images_per_s') / ours_['train_conv_share']:.2f}x, sample "
                             f"{ratio(ours_, theirs, 'sample_images_steps_per_s') / ours_['sample_conv_share']:.2f}x")
    if "bf16" in result["matmul_gflops"] and "diffusers fp32" in rows:
        ours_, theirs = rows["ours-peer bf16"], rows["diffusers fp32"]
        lines.append(f"ours-peer bf16 / diffusers fp32 (each as shipped): train {ratio(ours_, theirs, 'train_images_per_s'):.2f}x, "
                     f"sample {ratio(ours_, theirs, 'sample_images_steps_per_s'):.2f}x")
    if "inception" in result:
        inc = result["inception"]
        lines.append(f"\nInception features ({inc['images']} gray 28x28 images): torch-fidelity {inc['torch-fidelity']['images_per_s']:.2f} img/s, "
                     f"ours {inc['ours']['images_per_s']:.2f} img/s ({inc['speedup']:.2f}x); largest difference "
                     f"{inc['max_abs_diff']:.1e} ({inc['max_rel_diff']:.1e} of the largest feature)")
    return "\n".join(lines)


if __name__ == "__main__":
    typer.run(main)
