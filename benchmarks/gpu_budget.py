"""What the GPU configurations of docs/operations.md cost: network FLOPs per stage, and time at a stated rate.

The configurations (``CONFIGS``: `dvc exp run -S` sets on top of ``params.yaml``) are defined here once; the
docs print them and the table this script writes (``--markdown``), and tests/test_docs.py checks that the
table there is this script's output. FLOPs are counted, not estimated: ``torch.utils.flop_counter`` on one
forward pass of the configured U-Net (and of the FID Inception network), times the passes each stage makes:
- train: 3 x forward (forward + backward) per image, ``train.batch_size`` x ``train.steps`` per schedule;
- sample / sweep: forward x images x network calls per pass (``samplers.model_calls``: Heun's two count);
- features: Inception on every generated image and the two real splits.
The FID arithmetic (jackknife) is counted apart: it runs in float64 (``uncertainty``) and is no GPU bf16 work.

Time = FLOPs / rate. The rate is the bf16 8192-cube matrix product rate of this workplace's H200 as read
on it (788 TFLOP/s; .library/device/KINDS.md, 2026-10-28) times an assumed fraction of it that small
U-Nets on 28x28 images reach (``ASSUMED_FRACTION``: the CPU reaches 0.6-0.8 of its matmul rate,
benchmarks/speed.json; a GPU far less on so little work per kernel). `benchmarks/speed.py --device cuda`
(run by scripts/gpu_check.sh) measures the real fraction: ``--speed that.json`` uses it instead.

    python benchmarks/gpu_budget.py [--markdown] [--speed benchmarks/speed-cuda.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import typer
import yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ddpm_study.config import StudyConfig  # noqa: E402
from ddpm_study.samplers import model_calls, steps_within  # noqa: E402
from ddpm_study.training import build_model  # noqa: E402

H200_BF16_MATMUL = 788e12  # FLOP/s, read on this workplace's H200 (KINDS.md)
# Of it, for these small networks: an assumption until speed.py measures it on a GPU. 5 % (39 TFLOP/s) is what
# the issue's own estimate of the README's earlier GPU command implies (2.4e17 FLOP in 1.5-2.5 h on an H100).
ASSUMED_FRACTION = 0.05

LARGE_MODEL = {"model.base_channels": 64, "model.channel_mults": [1, 2, 2], "model.num_res_blocks": 2,
               "train.batch_size": 128, "train.lr": 2e-4, "train.ema_decay": 0.9995, "device": "cuda"}
CONFIGS = {
    "gpu-30min": {**LARGE_MODEL, "train.steps": 16000, "sample.num_images": 2000, "sample.steps": 100,
                  "sample.batch_size": 1000, "evaluate.batch_size": 250, "evaluate.kid_subset_size": 1000,
                  "sweep.nfe": [10, 20, 50, 100], "sweep.num_images": 2000, "sweep.batch_size": 1000},
    "gpu-2h": {**LARGE_MODEL, "train.steps": 40000, "sample.num_images": 5000, "sample.steps": 1000,
               "sample.batch_size": 1000, "evaluate.batch_size": 250, "evaluate.kid_subset_size": 1000,
               "sweep.nfe": [10, 20, 50, 100, 250], "sweep.num_images": 5000, "sweep.batch_size": 1000},
}


def configured(overrides: dict) -> StudyConfig:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.pop("extended", None)
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node[part]
        node[last] = value
    return StudyConfig.from_dict(raw)


def forward_flops(net: torch.nn.Module, *inputs: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(*inputs)
    return counter.get_total_flops()


def inception_flops(shape: tuple[int, int, int]) -> int:
    from ddpm_study import metrics

    return forward_flops(metrics._network(torch.device("cpu")), torch.zeros(1, *shape, dtype=torch.uint8))


def budget(name: str, overrides: dict, fraction: float) -> dict:
    cfg = configured(overrides)
    unet = build_model(cfg.model, cfg.image_shape[0]).eval()
    f_unet = forward_flops(unet, torch.zeros(1, *cfg.image_shape), torch.tensor([cfg.diffusion.timesteps // 2]))
    f_inc = inception_flops(cfg.image_shape)
    k = len(cfg.schedule)
    s, sw = cfg.sample, cfg.sweep
    flops = {
        "train": 3 * f_unet * cfg.train.batch_size * cfg.train.steps * k,
        "sample": f_unet * s.num_images * model_calls(s.sampler, s.steps) * k,
        "sweep": sum(f_unet * sw.num_images * model_calls(x, steps_within(x, n)) for x in sw.samplers for n in sw.budgets(x)) * k,
        "features": f_inc * (2 * s.num_images + k * (s.num_images + sum(map(len, map(sw.budgets, sw.samplers))) * sw.num_images)),
    }
    rate = H200_BF16_MATMUL * fraction
    total = sum(flops.values())
    return {"name": name, "overrides": overrides, "forward_gflop_per_image": f_unet / 1e9,
            "params": sum(p.numel() for p in unet.parameters()), "flops": flops, "total_flops": total,
            "rate_flops": rate, "estimated_minutes": total / rate / 60}


def markdown(rows: list[dict]) -> str:
    lines = ["| configuration | U-Net params | GFLOP / image | train | sample | sweep | Inception | total | est. time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r["flops"]
        lines.append(f"| `{r['name']}` | {r['params'] / 1e6:.1f} M | {r['forward_gflop_per_image']:.2f} | "
                     + " | ".join(f"{f[k]:.2e}" for k in ("train", "sample", "sweep", "features"))
                     + f" | {r['total_flops']:.2e} | {r['estimated_minutes']:.0f} min |")
    return "\n".join(lines)


def main(markdown_out: bool = typer.Option(False, "--markdown", help="print the docs' table"),
         speed: Path = typer.Option(None, help="a speed.json measured with --device cuda: its training rate instead")):
    fraction = ASSUMED_FRACTION
    if speed is not None:
        measured = json.loads(speed.read_text())
        fraction = measured["models"]["ours-default bf16"]["train_fraction_of_matmul"]
    rows = [budget(name, o, fraction) for name, o in CONFIGS.items()]
    if markdown_out:
        print(markdown(rows))
    else:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    typer.run(main)
