"""Device choice, reproducibility and seeding: the one place each is done."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: invalid value 'cuda': no CUDA GPU is available; expected auto or cpu")
    if name not in DEVICES:
        raise ConfigError(f"device: invalid value {name!r}; expected one of {', '.join(DEVICES)}")
    return torch.device(name)


# cuBLAS picks its reduction order per stream unless its workspace is fixed; with deterministic algorithms
# on, PyTorch requires this setting, and it must be in place before cuBLAS first initialises.
CUBLAS_WORKSPACE = ":4096:8"


def setup_device(name: str, reproducible: bool) -> torch.device:
    """``resolve_device`` plus, on CUDA, ``make_reproducible(reproducible)``: what every stage calls first."""
    device = resolve_device(name)
    make_reproducible(device, reproducible)
    return device


def make_reproducible(device: torch.device, on: bool) -> None:
    """On a CUDA device, make two runs of the same code bit-identical (on one GPU model) or let them differ.

    On: deterministic algorithms (``torch.use_deterministic_algorithms``: convolution backward and
    the scatter-adds pick deterministic kernels, and an op with none raises instead of drifting),
    cuDNN's autotuner off, the cuBLAS workspace fixed (``CUBLAS_WORKSPACE``), and TF32 off for
    matmuls and convolutions, so fp32 training and the Inception features (hence FID) keep fp32's
    precision and stay comparable with a CPU run. Off: PyTorch's defaults (faster, not repeatable).
    The CPU needs none of this: its kernels are deterministic, and nothing here changes them.
    """
    if device.type != "cuda":
        return
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on
    torch.backends.cuda.matmul.allow_tf32 = not on
    torch.backends.cudnn.allow_tf32 = not on


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 matrix maths runs natively on ``device``: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX. Elsewhere oneDNN emulates bf16 through fp32 and autocast only costs time."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def resolve_precision(name: str, device: torch.device) -> str:
    """``train.precision`` as it runs on ``device``: "bf16" only where bf16 is native (``bf16_supported``);
    elsewhere bf16 emulated through fp32 would be slower than fp32 itself, so it falls back to "fp32"."""
    return "bf16" if name == "bf16" and bf16_supported(device) else "fp32"


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """Mixed precision for a resolved ``precision``: convolutions and matmuls in bf16, while autocast keeps
    norms, softmax and losses in fp32 (and the weights, gradients and optimizer state stay fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def derived_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th stream (a batch, an epoch) of a run seeded with ``seed``.

    Streams of one run differ, and stream ``index`` of one seed never equals stream 0 of the next
    for any index below the multiplier (a prime).
    """
    return seed * 1_000_003 + index


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict:
    """Every global RNG state, in types ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict) -> None:
    random.setstate(_tuples(states["python"]))
    kind, keys, *rest = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _tuples(obj):
    # torch.load may give lists back for tuples; random.setstate needs tuples.
    return tuple(_tuples(o) for o in obj) if isinstance(obj, (list, tuple)) else obj
