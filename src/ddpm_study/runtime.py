"""Device choice and seeding: the one place each is done."""

from __future__ import annotations

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
