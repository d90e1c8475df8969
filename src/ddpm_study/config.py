"""Typed, frozen configuration of a study and its strict loader.

``StudyConfig.from_dict`` turns a plain mapping (what ``params.yaml`` parses to) into frozen
dataclasses. An unknown key, a missing key, a value of the wrong type, a value out of range or an
unknown choice raises ``ConfigError`` with one line naming the key, the bad value and what is
allowed, so a bad parameter fails before any data is read or any model is trained.
The library never reads ``params.yaml`` itself: the pipeline does, and hands the mapping here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from .schedules import SCHEDULES, get_betas

DATASETS = ("fashion_mnist", "mnist", "cifar10")
# (channels, height/width) of each data set's images.
IMAGE_SHAPES = {"fashion_mnist": (1, 28), "mnist": (1, 28), "cifar10": (3, 32)}
DEVICES = ("auto", "cpu", "cuda")
SAMPLERS = ("ddpm", "ddim")


class ConfigError(ValueError):
    """A parameter is unknown, missing, mistyped or out of range. The message names the key."""


@dataclass(frozen=True)
class DataConfig:
    dataset: Literal["fashion_mnist", "mnist", "cifar10"]
    source_dir: str
    download: bool
    train_subset: int

    def check(self) -> None:
        _require(self.train_subset >= 0, "data.train_subset", self.train_subset, "an integer >= 0 (0 = all)")


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int

    def check(self) -> None:
        _require(self.timesteps >= 2, "diffusion.timesteps", self.timesteps, "an integer >= 2")


@dataclass(frozen=True)
class LinearSchedule:
    beta_start: float
    beta_end: float


@dataclass(frozen=True)
class QuadraticSchedule:
    beta_start: float
    beta_end: float


@dataclass(frozen=True)
class SigmoidSchedule:
    beta_start: float
    beta_end: float
    sigmoid_range: float


@dataclass(frozen=True)
class CosineSchedule:
    s: float
    max_beta: float


@dataclass(frozen=True)
class SchedulesConfig:
    linear: LinearSchedule
    quadratic: QuadraticSchedule
    sigmoid: SigmoidSchedule
    cosine: CosineSchedule

    def params(self, name: str) -> dict[str, float]:
        return dataclasses.asdict(getattr(self, name))

    def check(self, timesteps: int) -> None:
        for name in ("linear", "quadratic", "sigmoid"):
            p = getattr(self, name)
            for key in ("beta_start", "beta_end"):
                value = getattr(p, key)
                _require(0 < value < 1, f"schedules.{name}.{key}", value, "a number in (0, 1)")
            _require(
                p.beta_start < p.beta_end,
                f"schedules.{name}.beta_end",
                p.beta_end,
                f"a number greater than beta_start ({p.beta_start})",
            )
        _require(self.sigmoid.sigmoid_range > 0, "schedules.sigmoid.sigmoid_range", self.sigmoid.sigmoid_range, "a number > 0")
        _require(self.cosine.s > 0, "schedules.cosine.s", self.cosine.s, "a number > 0")
        _require(0 < self.cosine.max_beta < 1, "schedules.cosine.max_beta", self.cosine.max_beta, "a number in (0, 1)")
        for name in SCHEDULES:
            try:
                get_betas(name, timesteps, **self.params(name))
            except ValueError as err:  # e.g. beta_end * 1000 / T >= 1 for a very small T
                raise ConfigError(f"schedules.{name}: {err}") from None


@dataclass(frozen=True)
class ModelConfig:
    base_channels: int
    channel_mults: tuple[int, ...]
    num_res_blocks: int
    attention_heads: int
    norm_groups: int
    dropout: float

    def check(self) -> None:
        _require(self.base_channels > 0, "model.base_channels", self.base_channels, "an integer > 0")
        _require(len(self.channel_mults) > 0 and all(m > 0 for m in self.channel_mults),
                 "model.channel_mults", list(self.channel_mults), "a non-empty list of integers > 0")
        _require(self.num_res_blocks > 0, "model.num_res_blocks", self.num_res_blocks, "an integer > 0")
        _require(self.attention_heads > 0, "model.attention_heads", self.attention_heads, "an integer > 0")
        _require(0 <= self.dropout < 1, "model.dropout", self.dropout, "a number in [0, 1)")
        for mult in self.channel_mults:
            width = self.base_channels * mult
            _require(self.norm_groups > 0 and width % self.norm_groups == 0, "model.norm_groups", self.norm_groups,
                     f"a divisor of every level's width ({width} = base_channels * {mult})")
            _require(width % self.attention_heads == 0, "model.attention_heads", self.attention_heads,
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

    def check(self) -> None:
        for key in ("steps", "batch_size", "log_every", "checkpoint_every", "loss_buckets"):
            _require(getattr(self, key) > 0, f"train.{key}", getattr(self, key), "an integer > 0")
        _require(self.lr > 0, "train.lr", self.lr, "a number > 0")
        _require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a number >= 0")
        _require(self.warmup_steps >= 0, "train.warmup_steps", self.warmup_steps, "an integer >= 0")
        _require(self.grad_clip > 0, "train.grad_clip", self.grad_clip, "a number > 0")
        _require(0 <= self.ema_decay < 1, "train.ema_decay", self.ema_decay, "a number in [0, 1)")
        # Checkpoints fall on log boundaries so a resumed run logs exactly what an uninterrupted one does.
        _require(self.checkpoint_every % self.log_every == 0, "train.checkpoint_every", self.checkpoint_every,
                 f"a multiple of train.log_every ({self.log_every})")


@dataclass(frozen=True)
class SampleConfig:
    sampler: Literal["ddpm", "ddim"]
    steps: int
    eta: float
    num_images: int
    batch_size: int
    grid_images: int
    gif_frames: int

    def check(self, timesteps: int) -> None:
        _require(1 <= self.steps <= timesteps, "sample.steps", self.steps,
                 f"an integer in [1, diffusion.timesteps = {timesteps}]")
        _require(self.eta >= 0, "sample.eta", self.eta, "a number >= 0")
        for key in ("num_images", "batch_size", "grid_images"):
            _require(getattr(self, key) > 0, f"sample.{key}", getattr(self, key), "an integer > 0")
        _require(self.gif_frames >= 2, "sample.gif_frames", self.gif_frames, "an integer >= 2")


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int
    kid_subset_size: int
    kid_subsets: int
    jackknife_groups: int

    def check(self, num_images: int) -> None:
        _require(self.batch_size > 0, "evaluate.batch_size", self.batch_size, "an integer > 0")
        _require(self.kid_subsets > 0, "evaluate.kid_subsets", self.kid_subsets, "an integer > 0")
        _require(1 < self.kid_subset_size <= num_images, "evaluate.kid_subset_size", self.kid_subset_size,
                 f"an integer in [2, sample.num_images = {num_images}]")
        _require(2 <= self.jackknife_groups <= num_images, "evaluate.jackknife_groups", self.jackknife_groups,
                 f"an integer in [2, sample.num_images = {num_images}]")


@dataclass(frozen=True)
class SweepConfig:
    """Quality against sampling cost: every sampler at every step count, from shared noise."""

    samplers: tuple[str, ...]
    steps: tuple[int, ...]
    eta: float
    num_images: int
    batch_size: int

    def check(self, timesteps: int, evaluate: EvaluateConfig, reference_images: int) -> None:
        for i, name in enumerate(self.samplers):
            _require(name in SAMPLERS, f"sweep.samplers[{i}]", name, f"one of {', '.join(SAMPLERS)}")
        _require(len(self.samplers) > 0 and len(set(self.samplers)) == len(self.samplers), "sweep.samplers",
                 list(self.samplers), f"a non-empty list of distinct names from: {', '.join(SAMPLERS)}")
        for i, steps in enumerate(self.steps):
            _require(1 <= steps <= timesteps, f"sweep.steps[{i}]", steps,
                     f"an integer in [1, diffusion.timesteps = {timesteps}]")
        _require(len(self.steps) > 0 and len(set(self.steps)) == len(self.steps), "sweep.steps", list(self.steps),
                 "a non-empty list of distinct step counts")
        _require(self.eta >= 0, "sweep.eta", self.eta, "a number >= 0")
        _require(self.batch_size > 0, "sweep.batch_size", self.batch_size, "an integer > 0")
        # FID against the real reference split; the floor at this N is a subset of the floor split.
        low = max(evaluate.kid_subset_size, evaluate.jackknife_groups)
        _require(low <= self.num_images <= reference_images, "sweep.num_images", self.num_images,
                 f"an integer in [max(evaluate.kid_subset_size, evaluate.jackknife_groups) = {low}, "
                 f"sample.num_images = {reference_images}]")


@dataclass(frozen=True)
class TrackingConfig:
    uri: str
    experiment: str

    def check(self) -> None:
        _require(bool(self.experiment.strip()), "tracking.experiment", self.experiment, "a non-empty name")


@dataclass(frozen=True)
class StudyConfig:
    schedule: tuple[str, ...]
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    data: DataConfig
    diffusion: DiffusionConfig
    schedules: SchedulesConfig
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
        cfg = _build(cls, raw, "")
        cfg.check()
        return cfg

    def check(self) -> None:
        _require(len(self.schedule) > 0, "schedule", [], f"one or a list of: {', '.join(SCHEDULES)}")
        for name in self.schedule:
            _require(name in SCHEDULES, "schedule", name, f"one or a list of: {', '.join(SCHEDULES)}")
        _require(len(set(self.schedule)) == len(self.schedule), "schedule", list(self.schedule), "names without repeats")
        _require(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        self.data.check()
        self.diffusion.check()
        self.schedules.check(self.diffusion.timesteps)
        self.model.check()
        _, size = IMAGE_SHAPES[self.data.dataset]
        halvings = len(self.model.channel_mults) - 1
        _require(size % 2**halvings == 0, "model.channel_mults", list(self.model.channel_mults),
                 f"at most {_max_halvings(size) + 1} levels: {self.data.dataset} images are {size}x{size} "
                 f"and the U-Net halves them {halvings} times")
        self.train.check()
        self.sample.check(self.diffusion.timesteps)
        self.evaluate.check(self.sample.num_images)
        self.sweep.check(self.diffusion.timesteps, self.evaluate, self.sample.num_images)
        self.tracking.check()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        channels, size = IMAGE_SHAPES[self.data.dataset]
        return channels, size, size

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def schedule_lineage(self, name: str) -> dict[str, Any]:
        """Everything a schedule's outputs depend on: all sections but other schedules and tracking."""
        d = self.to_dict()
        d.pop("tracking")
        d["schedule"] = name
        d["schedules"] = {name: d["schedules"][name]}
        return d

    def training_lineage(self, name: str) -> dict[str, Any]:
        """Every parameter a trained model depends on; a checkpoint resumes only when this matches.

        Where the data files came from (source_dir, download) is left out: the prepared arrays are
        the same whatever their source, and DVC tracks their content.
        """
        d = self.schedule_lineage(name)
        for section in ("sample", "evaluate", "sweep"):
            d.pop(section)
        d["data"] = {k: v for k, v in d["data"].items() if k not in ("source_dir", "download")}
        return d


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (a config lineage)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _max_halvings(size: int) -> int:
    n = 0
    while size % 2 == 0:
        size //= 2
        n += 1
    return n


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: invalid value {value!r}; expected {allowed}")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    if get_origin(tp) is tuple:
        return f"a list of {_type_name(get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: invalid value {value!r}; expected {_type_name(tp)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: invalid value {value!r}; expected {_type_name(tp)}")
        return tuple(_coerce(get_args(tp)[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    ok = {
        # bool is an int in Python; a YAML `true` must not pass as a step count.
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
    }[tp]
    if not ok:
        raise ConfigError(f"{key}: invalid value {value!r}; expected {_type_name(tp)}")
    if tp is float:
        if not math.isfinite(value):
            raise ConfigError(f"{key}: invalid value {value!r}; expected a finite number")
        return float(value)
    return value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix or "params"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(prefix, unknown[0])}: unknown key; valid keys in {where}: {', '.join(fields)}")
    missing = [f for f in fields if f not in raw]
    if missing:
        raise ConfigError(f"{_join(prefix, missing[0])}: missing key; {where} needs: {', '.join(fields)}")
    return cls(**{f: _coerce(hints[f], raw[f], _join(prefix, f)) for f in fields})


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key

