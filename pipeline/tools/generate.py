"""``ddpm-study generate``: not a stage. Samples a finished model outside DVC — the current
``params.yaml``'s model of a schedule (refused when stale or unfinished, as `sample` refuses it) or any
self-describing checkpoint file — with any sampler, step count, guidance weight and class, and writes a
PNG grid or the uint8 images as ``.npy``. With the `sample` stage's settings (the defaults, from
``params.yaml``'s `sample` section) it draws the `sample` stage's images, bit for bit: the noise of a
batch depends only on (seed, batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ddpm_study import samplers, sampling, training
from ddpm_study.config import StudyConfig, image_shape_of
from ddpm_study.diffusion import SPACINGS, GaussianDiffusion
from ddpm_study.samplers import SAMPLERS
from ddpm_study.errors import CheckpointError, ConfigError
from ddpm_study.files import write_array
from ddpm_study.runtime import setup_device
from ddpm_study.schedules import get_betas

from .. import checkpoints
from ..console import console, progress

OUT_SUFFIXES = (".png", ".npy")


@dataclass(frozen=True)
class Request:
    """What to generate; None: the `sample` section's value (and for ``label``: classes in turn)."""

    out: Path
    schedule: Optional[str] = None
    checkpoint: Optional[Path] = None
    model: Optional[str] = None  # an MLflow logged model: models:/<model id>
    sampler: Optional[str] = None
    steps: Optional[int] = None
    spacing: Optional[str] = None
    sigma_max: Optional[float] = None
    eta: Optional[float] = None
    num_images: Optional[int] = None
    batch_size: Optional[int] = None
    guidance: Optional[float] = None
    label: Optional[int] = None
    seed: Optional[int] = None


class Exported(torch.nn.Module):
    """An MLflow logged model (torch.export's graph of ``forward(x, t[, y])``) as the samplers call a U-Net."""

    def __init__(self, graph: torch.nn.Module, num_classes: int):
        super().__init__()
        self.graph, self.num_classes = graph, num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        t = t.long().expand(x.shape[0])
        if not self.num_classes:
            return self.graph(x, t)
        y = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device) if y is None else y
        return self.graph(x, t, y)


def _logged_model(cfg: StudyConfig, uri: str, device: torch.device):
    """The network of an MLflow logged model and, from its params (its training lineage), its diffusion and image shape."""
    import mlflow.pytorch
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from .. import tracking

    store = tracking.tracking_uri(cfg)
    if not uri.startswith("models:/"):
        raise ConfigError(f"--model: invalid value {uri!r}; expected models:/<model id> (the experiment's Models tab)")
    try:
        p = MlflowClient(store).get_logged_model(uri.removeprefix("models:/")).params
        with tracking.fluent_store(store):
            graph = mlflow.pytorch.load_model(uri, map_location=device)
    except MlflowException as err:
        raise ConfigError(f"--model: {uri} cannot be loaded from {store} ({' '.join(str(err).split())[:200]})") from None
    name = p["schedule"]
    prefix = f"schedules.{name}."
    shape = image_shape_of(p["data.dataset"], p.get("data.image_size", 0), p.get("data.channels", 0))
    return (Exported(graph, int(p["model.num_classes"])),
            *_described(name, int(p["diffusion.timesteps"]),
                        {k[len(prefix):]: float(v) for k, v in p.items() if k.startswith(prefix)}, shape,
                        p.get("model.prediction", "eps")))


def _described(name: str, timesteps: int, schedule_params: dict[str, float], shape: tuple[int, int],
               prediction: str) -> tuple[GaussianDiffusion, tuple[int, int, int]]:
    """The diffusion and image shape a model's own lineage (a checkpoint's, a logged model's params) names."""
    channels, size = shape
    return GaussianDiffusion(get_betas(name, timesteps, **schedule_params), prediction=prediction), (channels, size, size)


def _model(cfg: StudyConfig, r: Request, device: torch.device) -> tuple[torch.nn.Module, GaussianDiffusion, tuple[int, int, int]]:
    """The EMA model, its diffusion and image shape: of ``r.checkpoint`` or ``r.model`` as it describes itself,
    else the current params'."""
    if r.model is not None:
        return _logged_model(cfg, r.model, device)
    if r.checkpoint is None:
        if r.schedule not in cfg.schedules:
            raise ConfigError(f"--schedule: invalid value {r.schedule!r}; expected one of {', '.join(cfg.schedules)}")
        model, diffusion = checkpoints.load(cfg, r.schedule, device)
        return model, diffusion, cfg.image_shape
    state = training.load_checkpoint(r.checkpoint)
    lineage = state["lineage"]
    if state["step"] != lineage["train"]["steps"]:
        raise CheckpointError(f"{r.checkpoint}: unfinished (step {state['step']} of {lineage['train']['steps']}); "
                              "run `dvc repro` to finish training")
    name = lineage["schedule"]
    return (training.load_ema_model(state, device),
            *_described(name, lineage["diffusion"]["timesteps"], lineage["schedules"][name],
                        image_shape_of(**{k: v for k, v in lineage["data"].items() if k in ("dataset", "image_size", "channels")}),
                        lineage["model"].get("prediction", "eps")))


def _check(r: Request, T: int, num_classes: int) -> None:
    """Bad options are one line naming the option and what it accepts, before any sampling."""
    if r.sampler is not None and r.sampler not in SAMPLERS:
        raise ConfigError(f"--sampler: invalid value {r.sampler!r}; expected one of {', '.join(SAMPLERS)}")
    if r.steps is not None and not 1 <= r.steps <= T:
        raise ConfigError(f"--steps: invalid value {r.steps}; expected an integer in [1, {T}] (the model's T)")
    for option, value in (("--num-images", r.num_images), ("--batch-size", r.batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{option}: invalid value {value}; expected an integer >= 1")
    if not num_classes and r.label is not None:
        raise ConfigError(f"--class: invalid value {r.label}; this model is unconditional (model.num_classes = 0)")
    if not num_classes and r.guidance:
        raise ConfigError(f"--guidance: invalid value {r.guidance:g}; this model is unconditional: expected 0")
    if num_classes and r.label is not None and not 0 <= r.label < num_classes:
        raise ConfigError(f"--class: invalid value {r.label}; expected an integer in [0, {num_classes - 1}]")


def generate(cfg: StudyConfig, r: Request) -> torch.Tensor:
    """uint8 images [N, C, H, W] as ``r`` asks, written to ``r.out``."""
    if r.out.suffix not in OUT_SUFFIXES:  # before loading anything
        raise ConfigError(f"--out: invalid value '{r.out}'; expected a file ending in {' or '.join(OUT_SUFFIXES)}")
    device = setup_device(cfg.device, cfg.reproducible)
    model, diffusion, shape = _model(cfg, r, device)
    _check(r, diffusion.num_timesteps, model.num_classes)
    s = cfg.sample
    sampler, steps, eta = r.sampler or s.sampler, r.steps or s.steps, s.eta if r.eta is None else r.eta
    n, batch = r.num_images or s.num_images, r.batch_size or s.batch_size
    guidance = (s.guidance if model.num_classes else 0.0) if r.guidance is None else r.guidance
    labels = (None if not model.num_classes else
              sampling.class_labels(n, model.num_classes) if r.label is None else torch.full((n,), r.label))
    spacing = r.spacing or s.spacing
    sigma_max = s.sigma_max if r.sigma_max is None else r.sigma_max
    if sigma_max < 0:
        raise ConfigError(f"--sigma-max: invalid value {sigma_max:g}; expected a number >= 0 (0 = no bound)")
    try:
        start = samplers.start_below(diffusion, sigma_max)
    except ValueError as err:
        raise ConfigError(f"--sigma-max: invalid value {sigma_max:g} ({err}); expected 0 or a larger sigma") from None
    try:
        spaced = start.respace(steps, spacing)
    except ValueError as err:  # an unknown spacing, or one that repeats timesteps at this step count
        raise ConfigError(f"--spacing: invalid value {spacing!r} ({err}); expected one of {', '.join(SPACINGS)}") from None
    with progress() as bar:
        task = bar.add_task(f"generate {r.schedule or r.checkpoint or r.model}", total=-(-n // batch) * steps,
                            info=f"{sampler}, {steps} steps")
        out = sampling.generate(model, spaced, num_images=n, batch_size=batch, image_shape=shape,
                                seed=cfg.seed if r.seed is None else r.seed, device=device, sampler=sampler, eta=eta,
                                trajectory_images=1, trajectory_frames=2, labels=labels, guidance=guidance,
                                on_step=lambda _: bar.advance(task))
    r.out.parent.mkdir(parents=True, exist_ok=True)
    if r.out.suffix == ".npy":
        write_array(r.out, out.images.numpy().astype(np.uint8))
    else:
        sampling.save_grid(out.images, r.out)
    console.print(f"{r.out}: {n} images, {sampler} with {steps} steps", soft_wrap=True)
    return out.images


def run(cfg: StudyConfig, params: Path, request: dict) -> None:
    generate(cfg, Request(**request))
