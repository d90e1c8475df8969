"""The hyper-parameters a trained model depends on: the ``model`` and ``train`` sections, and the lineage hash.

These are the parts of the configuration the training loop (``training.py``) reads; ``config.StudyConfig``
composes them with the other sections and re-exports them. Kept apart so that the training code's
import closure, which the training lineage's code fingerprint hashes (``pipeline.lineage``), holds no
sampling or evaluation code: a new sampler or metric parameter retrains nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .diffusion import PREDICTIONS
from .strict import require

# How the class enters the U-Net (``unet.UNet``): multiplied into the decoder levels, or added to the time embedding.
CLASS_EMBEDDINGS = ("multiply", "add")
# Training arithmetic (``runtime.autocast``): bf16 autocast where the device has native bf16, else fp32.
PRECISIONS = ("bf16", "fp32")


@dataclass(frozen=True)
class ModelConfig:
    base_channels: int
    channel_mults: tuple[int, ...]
    num_res_blocks: int
    attention_heads: int
    norm_groups: int
    dropout: float
    num_classes: int  # 0 = unconditional; else class-conditional with a null class for guidance
    class_embedding: str
    prediction: str  # what the network predicts: eps (Ho et al.) | v (Salimans & Ho 2022)

    def check(self) -> None:
        require(self.prediction in PREDICTIONS, "model.prediction", self.prediction, f"one of {', '.join(PREDICTIONS)}")
        require(self.num_classes >= 0, "model.num_classes", self.num_classes, "an integer >= 0 (0 = unconditional)")
        require(self.class_embedding in CLASS_EMBEDDINGS, "model.class_embedding", self.class_embedding,
                 f"one of {', '.join(CLASS_EMBEDDINGS)}")
        require(self.base_channels > 0, "model.base_channels", self.base_channels, "an integer > 0")
        require(len(self.channel_mults) > 0 and all(m > 0 for m in self.channel_mults),
                 "model.channel_mults", list(self.channel_mults), "a non-empty list of integers > 0")
        require(self.num_res_blocks > 0, "model.num_res_blocks", self.num_res_blocks, "an integer > 0")
        require(self.attention_heads > 0, "model.attention_heads", self.attention_heads, "an integer > 0")
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "a number in [0, 1)")
        for mult in self.channel_mults:
            width = self.base_channels * mult
            require(self.norm_groups > 0 and width % self.norm_groups == 0, "model.norm_groups", self.norm_groups,
                     f"a divisor of every level's width ({width} = base_channels * {mult})")
            require(width % self.attention_heads == 0, "model.attention_heads", self.attention_heads,
                     f"a divisor of every level's width ({width})")


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    grad_clip: float
    ema_decay: float
    log_every: int
    checkpoint_every: int
    loss_buckets: int
    cond_drop_prob: float  # class-conditional models: P(label -> null class), for classifier-free guidance
    processes: int  # data-parallel processes under torchrun (one per GPU; gloo on CPU); 1 = none
    precision: str  # bf16 (autocast where the device has native bf16, else fp32) | fp32

    def check(self) -> None:
        for key in ("steps", "batch_size", "log_every", "checkpoint_every", "loss_buckets"):
            require(getattr(self, key) > 0, f"train.{key}", getattr(self, key), "an integer > 0")
        require(self.lr > 0, "train.lr", self.lr, "a number > 0")
        require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a number >= 0")
        require(self.warmup_steps >= 0, "train.warmup_steps", self.warmup_steps, "an integer >= 0")
        require(self.grad_clip > 0, "train.grad_clip", self.grad_clip, "a number > 0")
        require(0 <= self.ema_decay < 1, "train.ema_decay", self.ema_decay, "a number in [0, 1)")
        require(0 <= self.cond_drop_prob < 1, "train.cond_drop_prob", self.cond_drop_prob, "a number in [0, 1)")
        require(self.processes >= 1, "train.processes", self.processes, "an integer >= 1")
        require(self.precision in PRECISIONS, "train.precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        # Each process takes an equal slice of the global batch (so the run equals one process's).
        require(self.batch_size % self.processes == 0, "train.processes", self.processes,
                f"a divisor of train.batch_size ({self.batch_size})")
        # Checkpoints fall on log boundaries so a resumed run logs exactly what an uninterrupted one does.
        require(self.checkpoint_every % self.log_every == 0, "train.checkpoint_every", self.checkpoint_every,
                 f"a multiple of train.log_every ({self.log_every})")


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (a config lineage)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
