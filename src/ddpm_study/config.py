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

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .samplers import SAMPLERS, start_below, steps_within
from .diffusion import SPACINGS, GaussianDiffusion, spaced_timesteps
from .errors import ConfigError
# The sections the training loop reads live in ``hparams`` (it imports nothing of this file, so that a
# new sampling or evaluation parameter here is no change to a trained model's lineage); re-exported.
from .hparams import CLASS_EMBEDDINGS, PRECISIONS, ModelConfig, TrainConfig, fingerprint  # noqa: F401
from .schedules import SCHEDULES, get_betas
from .strict import build, plain, require

# (channels, height/width) of each data set's images, and its number of classes.
IMAGE_SHAPES = {"fashion_mnist": (1, 28), "mnist": (1, 28), "cifar10": (3, 32)}
NUM_CLASSES = {"fashion_mnist": 10, "mnist": 10, "cifar10": 10}


@dataclass(frozen=True)
class DataConfig:
    dataset: Literal["fashion_mnist", "mnist", "cifar10", "folder"]
    source_dir: str
    download: bool
    train_subset: int
    image_size: int  # 0 = the data set's own; folder: the side every image is resized and centre-cropped to
    channels: int  # 0 = the data set's own; folder: 1 (grey) or 3 (RGB)

    def check(self) -> None:
        require(self.train_subset >= 0, "data.train_subset", self.train_subset, "an integer >= 0 (0 = all)")
        if self.dataset == "folder":
            require(self.source_dir not in ("", "auto"), "data.source_dir", self.source_dir,
                    "the folder of PNG/JPEG images (data.dataset folder)")
            require(self.image_size >= 8, "data.image_size", self.image_size, "an integer >= 8 (data.dataset folder)")
            require(self.channels in (1, 3), "data.channels", self.channels, "1 (grey) or 3 (RGB) (data.dataset folder)")
            return
        channels, size = IMAGE_SHAPES[self.dataset]
        require(self.image_size in (0, size), "data.image_size", self.image_size,
                f"0 or {size} ({self.dataset}'s own size; to resize, use data.dataset folder)")
        require(self.channels in (0, channels), "data.channels", self.channels, f"0 or {channels} ({self.dataset}'s own)")

    @property
    def shape(self) -> tuple[int, int]:
        """(channels, height = width) of the prepared images."""
        return image_shape_of(self.dataset, self.image_size, self.channels)


def image_shape_of(dataset: str, image_size: int = 0, channels: int = 0) -> tuple[int, int]:
    """(channels, height = width) of a data set's prepared images, as ``data`` params (a lineage's too) give them."""
    return (int(channels), int(image_size)) if dataset == "folder" else IMAGE_SHAPES[dataset]


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int

    def check(self) -> None:
        require(self.timesteps >= 2, "diffusion.timesteps", self.timesteps, "an integer >= 2")


@dataclass(frozen=True)
class SampleConfig:
    sampler: str
    steps: int
    spacing: str  # which training timesteps the steps use (``diffusion.SPACINGS``)
    sigma_max: float  # start no higher than this sigma (``samplers.start_below``); 0 = at t = T
    eta: float
    num_images: int
    batch_size: int
    grid_images: int
    gif_frames: int
    guidance: float  # classifier-free guidance weight w (Ho & Salimans): see ``sampling.guided``

    def check(self, timesteps: int) -> None:
        require(self.sampler in SAMPLERS, "sample.sampler", self.sampler, f"one of {', '.join(SAMPLERS)}")
        require(self.spacing in SPACINGS, "sample.spacing", self.spacing, f"one of {', '.join(SPACINGS)}")
        require(1 <= self.steps <= timesteps, "sample.steps", self.steps,
                 f"an integer in [1, diffusion.timesteps = {timesteps}]")
        require(self.sigma_max >= 0, "sample.sigma_max", self.sigma_max, "a number >= 0 (0 = no bound)")
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
    fid_inf_fractions: tuple[float, ...]  # FID∞'s subset sizes, as fractions of N (``fid_infinity.jackknife``)
    fid_inf_degree: int  # the polynomial in 1/N fitted through them: 1 (Chong & Forsyth's line) or 2

    def check(self, num_images: int) -> None:
        require(self.batch_size > 0, "evaluate.batch_size", self.batch_size, "an integer > 0")
        require(self.kid_subsets > 0, "evaluate.kid_subsets", self.kid_subsets, "an integer > 0")
        require(1 < self.kid_subset_size <= num_images, "evaluate.kid_subset_size", self.kid_subset_size,
                 f"an integer in [2, sample.num_images = {num_images}]")
        require(2 <= self.jackknife_groups <= num_images, "evaluate.jackknife_groups", self.jackknife_groups,
                 f"an integer in [2, sample.num_images = {num_images}]")
        require(self.fid_inf_degree in (1, 2), "evaluate.fid_inf_degree", self.fid_inf_degree, "1 or 2")
        fractions = self.fid_inf_fractions
        require(all(0 < f <= 1 for f in fractions) and len(set(fractions)) > self.fid_inf_degree,
                "evaluate.fid_inf_fractions", list(fractions),
                f"more than evaluate.fid_inf_degree = {self.fid_inf_degree} distinct fractions of N in (0, 1]")


@dataclass(frozen=True)
class SweepConfig:
    """Quality against sampling cost: every sampler at every budget of network calls (NFE), from shared noise."""

    samplers: tuple[str, ...]
    nfe: tuple[int, ...]  # network calls per sample; each sampler takes the most steps that fit (``steps_within``)
    baseline_nfe: int  # DDPM at this NFE is the cell every other is read against (0: the largest of ``nfe``)
    spacing: str
    sigma_max: float
    guidance: tuple[float, ...]
    eta: float
    num_images: int
    batch_size: int

    @property
    def baseline_budget(self) -> int:
        """The NFE of the DDPM cell every other cell is read against: ``baseline_nfe``, 0 = the largest of ``nfe``."""
        return self.baseline_nfe or max(self.nfe)

    def budgets(self, sampler: str) -> list[int]:
        """The NFE budgets ``sampler`` runs at, ascending: ``nfe``, and for DDPM the baseline's too."""
        return sorted(set(self.nfe) | ({self.baseline_budget} if sampler == "ddpm" else set()))

    @property
    def all_budgets(self) -> list[int]:
        """Every budget some sampler of the sweep runs at, ascending (the tables' columns)."""
        return sorted({n for x in self.samplers for n in self.budgets(x)})

    def check(self, timesteps: int, evaluate: EvaluateConfig, reference_images: int) -> None:
        for i, name in enumerate(self.samplers):
            require(name in SAMPLERS, f"sweep.samplers[{i}]", name, f"one of {', '.join(SAMPLERS)}")
        require(len(self.samplers) > 0 and len(set(self.samplers)) == len(self.samplers), "sweep.samplers",
                 list(self.samplers), f"a non-empty list of distinct names from: {', '.join(SAMPLERS)}")
        require(self.spacing in SPACINGS, "sweep.spacing", self.spacing, f"one of {', '.join(SPACINGS)}")
        for i, nfe in enumerate(self.nfe):
            require(1 <= nfe <= timesteps, f"sweep.nfe[{i}]", nfe, f"an integer in [1, diffusion.timesteps = {timesteps}]")
        require(len(self.nfe) > 0 and len(set(self.nfe)) == len(self.nfe), "sweep.nfe", list(self.nfe),
                 "a non-empty list of distinct budgets of network calls")
        require(0 <= self.baseline_nfe <= timesteps, "sweep.baseline_nfe", self.baseline_nfe,
                 f"an integer in [0, diffusion.timesteps = {timesteps}] (0 = the largest of sweep.nfe)")
        require(self.sigma_max >= 0, "sweep.sigma_max", self.sigma_max, "a number >= 0 (0 = no bound)")
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
class LikelihoodConfig:
    """Bits/dim on the test split (``likelihood.stratified_bits_per_dim``)."""

    images: int  # the first this many test images
    exact_terms: int  # the terms at t < exact_terms, one model call each
    strata: int  # model calls per image on the rest: one timestep per stratum of [exact_terms, T)
    batch_size: int

    def check(self, timesteps: int) -> None:
        require(self.images >= 2, "likelihood.images", self.images, "an integer >= 2 (a spread over images)")
        require(0 <= self.exact_terms < timesteps, "likelihood.exact_terms", self.exact_terms,
                f"an integer in [0, diffusion.timesteps - 1 = {timesteps - 1}]")
        require(1 <= self.strata <= timesteps - self.exact_terms, "likelihood.strata", self.strata,
                f"an integer in [1, diffusion.timesteps - likelihood.exact_terms = {timesteps - self.exact_terms}]")
        require(self.batch_size > 0, "likelihood.batch_size", self.batch_size, "an integer > 0")


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
    reproducible: bool  # CUDA: deterministic kernels and no TF32 (``runtime.make_reproducible``); the CPU always is
    data: DataConfig
    diffusion: DiffusionConfig
    schedules: dict[str, dict[str, float]]  # per registered schedule, its parameters
    model: ModelConfig
    train: TrainConfig
    sample: SampleConfig
    evaluate: EvaluateConfig
    sweep: SweepConfig
    likelihood: LikelihoodConfig
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
        _, size = self.data.shape
        halvings = len(self.model.channel_mults) - 1
        require(size % 2**halvings == 0, "model.channel_mults", list(self.model.channel_mults),
                 f"at most {_max_halvings(size) + 1} levels: {self.data.dataset} images are {size}x{size} "
                 f"and the U-Net halves them {halvings} times")
        if self.data.dataset != "folder":  # a folder's classes are its sub-folders: `prepare` checks them
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
        self._check_spacings()
        self.likelihood.check(self.diffusion.timesteps)
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

    def _check_spacings(self) -> None:
        """Every schedule's step counts give distinct timesteps under their spacing below their sigma_max (karras on
        cosine may not), and a sigma_max leaves some timesteps."""
        s, sw = self.sample, self.sweep
        settings = [("sample", s.spacing, s.sigma_max, s.steps)]
        settings += [("sweep", sw.spacing, sw.sigma_max, steps)
                     for steps in sorted({steps_within(x, n) for x in sw.samplers for n in sw.budgets(x)})]
        for name in self.schedule:
            full = GaussianDiffusion(self.betas(name))
            for section, spacing, sigma_max, steps in settings:
                try:
                    process = start_below(full, sigma_max)
                except ValueError as err:
                    raise ConfigError(f"{section}.sigma_max: invalid value {sigma_max:g} for schedule {name} ({err}); "
                                      "expected 0 (no bound) or a larger sigma, e.g. 80 (EDM)") from None
                try:
                    spaced_timesteps(process.num_timesteps, steps, spacing, process.alphas_cumprod_np)
                except ValueError as err:
                    raise ConfigError(f"{section}.spacing: invalid value {spacing!r} for schedule {name} at {steps} steps "
                                      f"({err}); expected one of {', '.join(SPACINGS)} that gives distinct timesteps") from None

    def betas(self, name: str) -> np.ndarray:
        """The float64 betas [T] of schedule ``name`` with this study's T and parameters."""
        return get_betas(name, self.diffusion.timesteps, **self.schedules[name])

    def gaussian_diffusion(self, name: str) -> GaussianDiffusion:
        """Schedule ``name``'s diffusion at this T, reading the network's output as ``model.prediction`` says."""
        return GaussianDiffusion(self.betas(name), prediction=self.model.prediction)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        channels, size = self.data.shape
        return channels, size, size

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


def _max_halvings(size: int) -> int:
    n = 0
    while size % 2 == 0:
        size //= 2
        n += 1
    return n
