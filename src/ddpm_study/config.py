"""Typed, frozen configuration of a study.

``StudyConfig.from_dict`` turns a plain mapping (what ``params.yaml`` parses to) into frozen
dataclasses with the strict loader (``strict.build``), then checks every range: an unknown key, a
missing key, a value of the wrong type, a value out of range or an unknown choice raises
``ConfigError`` with one line naming the key, the bad value and what is allowed, so a bad
parameter fails before any data is read or any model is trained. The ``schedules`` section is
checked against the schedule registry (``schedules.SCHEDULES``: names, parameters, ranges).
The library never reads ``params.yaml`` itself: the pipeline does, and hands the mapping here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .diffusion import SAMPLERS
from .errors import ConfigError
from .schedules import SCHEDULES, get_betas
from .strict import build, plain, require

# (channels, height/width) of each data set's images, and its number of classes.
IMAGE_SHAPES = {"fashion_mnist": (1, 28), "mnist": (1, 28), "cifar10": (3, 32)}
NUM_CLASSES = {"fashion_mnist": 10, "mnist": 10, "cifar10": 10}
# How the class enters the U-Net (``unet.UNet``): multiplied into the decoder levels, or added to the time embedding.
CLASS_EMBEDDINGS = ("multiply", "add")
# Training arithmetic (``runtime.autocast``): bf16 autocast where the device has native bf16, else fp32.
PRECISIONS = ("bf16", "fp32")


@dataclass(frozen=True)
class DataConfig:
    dataset: Literal["fashion_mnist", "mnist", "cifar10"]
    source_dir: str
    download: bool
    train_subset: int

    def check(self) -> None:
        require(self.train_subset >= 0, "data.train_subset", self.train_subset, "an integer >= 0 (0 = all)")


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int

    def check(self) -> None:
        require(self.timesteps >= 2, "diffusion.timesteps", self.timesteps, "an integer >= 2")


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

    def check(self) -> None:
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


@dataclass(frozen=True)
class SampleConfig:
    sampler: str
    steps: int
    eta: float
    num_images: int
    batch_size: int
    grid_images: int
    gif_frames: int
    guidance: float  # classifier-free guidance weight w (Ho & Salimans): see ``sampling.guided``

    def check(self, timesteps: int) -> None:
        require(self.sampler in SAMPLERS, "sample.sampler", self.sampler, f"one of {', '.join(SAMPLERS)}")
        require(1 <= self.steps <= timesteps, "sample.steps", self.steps,
                 f"an integer in [1, diffusion.timesteps = {timesteps}]")
        require(self.eta >= 0, "sample.eta", self.eta, "a number >= 0")
        for key in ("num_images", "batch_size", "grid_images"):
            require(getattr(self, key) > 0, f"sample.{key}", getattr(self, key), "an integer > 0")
        require(self.gif_frames >= 2, "sample.gif_frames", self.gif_frames, "an integer >= 2")
        require(self.guidance >= -1, "sample.guidance", self.guidance,
                 "a number >= -1 (-1 = unconditional, 0 = conditional, > 0 = guided)")


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int
    kid_subset_size: int
    kid_subsets: int
    jackknife_groups: int

    def check(self, num_images: int) -> None:
        require(self.batch_size > 0, "evaluate.batch_size", self.batch_size, "an integer > 0")
        require(self.kid_subsets > 0, "evaluate.kid_subsets", self.kid_subsets, "an integer > 0")
        require(1 < self.kid_subset_size <= num_images, "evaluate.kid_subset_size", self.kid_subset_size,
                 f"an integer in [2, sample.num_images = {num_images}]")
        require(2 <= self.jackknife_groups <= num_images, "evaluate.jackknife_groups", self.jackknife_groups,
                 f"an integer in [2, sample.num_images = {num_images}]")


@dataclass(frozen=True)
class SweepConfig:
    """Quality against sampling cost: every sampler at every step count, from shared noise."""

    samplers: tuple[str, ...]
    steps: tuple[int, ...]
    guidance: tuple[float, ...]
    eta: float
    num_images: int
    batch_size: int

    def check(self, timesteps: int, evaluate: EvaluateConfig, reference_images: int) -> None:
        for i, name in enumerate(self.samplers):
            require(name in SAMPLERS, f"sweep.samplers[{i}]", name, f"one of {', '.join(SAMPLERS)}")
        require(len(self.samplers) > 0 and len(set(self.samplers)) == len(self.samplers), "sweep.samplers",
                 list(self.samplers), f"a non-empty list of distinct names from: {', '.join(SAMPLERS)}")
        for i, steps in enumerate(self.steps):
            require(1 <= steps <= timesteps, f"sweep.steps[{i}]", steps,
                     f"an integer in [1, diffusion.timesteps = {timesteps}]")
        require(len(self.steps) > 0 and len(set(self.steps)) == len(self.steps), "sweep.steps", list(self.steps),
                 "a non-empty list of distinct step counts")
        for i, w in enumerate(self.guidance):
            require(w >= -1, f"sweep.guidance[{i}]", w, "a number >= -1 (-1 = unconditional, 0 = conditional)")
        require(len(self.guidance) > 0 and len(set(self.guidance)) == len(self.guidance), "sweep.guidance",
                 list(self.guidance), "a non-empty list of distinct guidance weights")
        require(self.eta >= 0, "sweep.eta", self.eta, "a number >= 0")
        require(self.batch_size > 0, "sweep.batch_size", self.batch_size, "an integer > 0")
        # FID against the real reference split; the floor at this N is a subset of the floor split.
        low = max(evaluate.kid_subset_size, evaluate.jackknife_groups)
        require(low <= self.num_images <= reference_images, "sweep.num_images", self.num_images,
                 f"an integer in [max(evaluate.kid_subset_size, evaluate.jackknife_groups) = {low}, "
                 f"sample.num_images = {reference_images}]")


@dataclass(frozen=True)
class TrackingConfig:
    uri: str
    experiment: str

    def check(self) -> None:
        require(bool(self.experiment.strip()), "tracking.experiment", self.experiment, "a non-empty name")


@dataclass(frozen=True)
class StudyConfig:
    schedule: tuple[str, ...]
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    data: DataConfig
    diffusion: DiffusionConfig
    schedules: dict[str, dict[str, float]]  # per registered schedule, its parameters
    model: ModelConfig
    train: TrainConfig
    sample: SampleConfig
    evaluate: EvaluateConfig
    sweep: SweepConfig
    tracking: TrackingConfig

    @classmethod
    def from_dict(cls, raw: Any) -> "StudyConfig":
        """Validate ``raw`` (the parsed params.yaml) and build the config; raises ConfigError."""
        if not isinstance(raw, dict):
            raise ConfigError(f"params: expected a mapping of sections, got {type(raw).__name__}")
        raw = dict(raw)
        # `schedule` may be a single name (as `dvc exp run -S schedule=cosine` writes it) or a list.
        if isinstance(raw.get("schedule"), str):
            raw["schedule"] = [raw["schedule"]]
        cfg = build(cls, raw)
        cfg.check()
        return cfg

    def check(self) -> None:
        require(len(self.schedule) > 0, "schedule", [], f"one or a list of: {', '.join(SCHEDULES)}")
        for name in self.schedule:
            require(name in SCHEDULES, "schedule", name, f"one or a list of: {', '.join(SCHEDULES)}")
        require(len(set(self.schedule)) == len(self.schedule), "schedule", list(self.schedule), "names without repeats")
        require(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        self.data.check()
        self.diffusion.check()
        self._check_schedules()
        self.model.check()
        _, size = IMAGE_SHAPES[self.data.dataset]
        halvings = len(self.model.channel_mults) - 1
        require(size % 2**halvings == 0, "model.channel_mults", list(self.model.channel_mults),
                 f"at most {_max_halvings(size) + 1} levels: {self.data.dataset} images are {size}x{size} "
                 f"and the U-Net halves them {halvings} times")
        classes = NUM_CLASSES[self.data.dataset]
        require(self.model.num_classes in (0, classes), "model.num_classes", self.model.num_classes,
                 f"0 (unconditional) or {classes} (the classes of {self.data.dataset})")
        self.train.check()
        self.sample.check(self.diffusion.timesteps)
        if self.model.num_classes:  # the per-class FID needs two samples of every class at least
            require(self.sample.num_images >= 2 * self.model.num_classes, "sample.num_images", self.sample.num_images,
                     f"at least 2 per class (2 * model.num_classes = {2 * self.model.num_classes}) for the per-class FID")
        else:  # guidance needs a class-conditional model
            require(self.sample.guidance == 0, "sample.guidance", self.sample.guidance,
                     "0 for an unconditional model (model.num_classes = 0)")
            require(self.sweep.guidance == (0.0,), "sweep.guidance", list(self.sweep.guidance),
                     "[0] for an unconditional model (model.num_classes = 0)")
        self.evaluate.check(self.sample.num_images)
        self.sweep.check(self.diffusion.timesteps, self.evaluate, self.sample.num_images)
        self.tracking.check()

    def _check_schedules(self) -> None:
        """Every registered schedule has its parameters, each known and in range, and valid betas at this T."""
        for name in self.schedules:
            if name not in SCHEDULES:
                raise ConfigError(f"schedules.{name}: unknown key; valid keys in schedules (the registered "
                                  f"schedules): {', '.join(SCHEDULES)}")
        for name, spec in SCHEDULES.items():
            key = f"schedules.{name}"
            if name not in self.schedules:
                raise ConfigError(f"{key}: missing key; schedules needs: {', '.join(SCHEDULES)}")
            given = self.schedules[name]
            needs = ", ".join(f"{p} (default {param.default:g})" for p, param in spec.params.items())
            for p in given:
                if p not in spec.params:
                    raise ConfigError(f"{key}.{p}: unknown key; valid keys in {key}: {needs}")
            for p, param in spec.params.items():
                if p not in given:
                    raise ConfigError(f"{key}.{p}: missing key; {key} needs: {needs}")
                require(param.allows(given[p], given), f"{key}.{p}", given[p], param.describe(given))
            try:
                self.betas(name)
            except ValueError as err:  # e.g. beta_end * 1000 / T >= 1 for a very small T
                raise ConfigError(f"{key}: {err}") from None

    def betas(self, name: str) -> np.ndarray:
        """The float64 betas [T] of schedule ``name`` with this study's T and parameters."""
        return get_betas(name, self.diffusion.timesteps, **self.schedules[name])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        channels, size = IMAGE_SHAPES[self.data.dataset]
        return channels, size, size

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (a config lineage)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _max_halvings(size: int) -> int:
    n = 0
    while size % 2 == 0:
        size //= 2
        n += 1
    return n
