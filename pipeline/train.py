"""Stage `train`: one U-Net DDPM per listed schedule, resumable, tracked in MLflow."""

from __future__ import annotations

import pandas as pd
import torch

from ddpm_study import schedules, training
from ddpm_study.config import ConfigError, StudyConfig
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.files import atomic_path, write_json
from ddpm_study.runtime import resolve_device

from . import lineage, paths, tracking
from .prepare import load_array
from .ui import console, progress


def diffusion_for(cfg: StudyConfig, name: str) -> GaussianDiffusion:
    return GaussianDiffusion(schedules.get_betas(name, cfg.diffusion.timesteps, **cfg.schedules.params(name)))


def training_images(cfg: StudyConfig) -> torch.Tensor:
    images = torch.from_numpy(load_array(paths.prepared_array("train_images")))
    return images[: cfg.data.train_subset] if cfg.data.train_subset else images


def write_history(path, rows) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False)


def run(cfg: StudyConfig) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = resolve_device(cfg.device)
    images = training_images(cfg)
    if cfg.train.batch_size > len(images):
        raise ConfigError(f"train.batch_size: invalid value {cfg.train.batch_size}; expected at most the "
                          f"{len(images)} training images (data.train_subset)")
    summaries = {}
    for name in cfg.schedule:
        diffusion = diffusion_for(cfg, name)
        ckpt = paths.checkpoint(name)
        with tracking.schedule_run(cfg, name, "train") as run, progress() as bar:
            task = bar.add_task(f"train {name}", total=cfg.train.steps, info="")
            history: list[dict] = []

            def on_log(row: dict) -> None:
                history.append(row)
                write_history(paths.train_history(name), history)
                run.log_train_rows([row])
                bar.update(task, completed=row["step"], info=f"loss {row['loss']:.4f}  {row['images_per_s']:.0f} img/s")

            result = training.train(
                schedule=name,
                diffusion=diffusion,
                images=images,
                model_cfg=cfg.model,
                train_cfg=cfg.train,
                seed=cfg.seed,
                lineage=lineage.training(cfg, name),
                device=device,
                checkpoint_path=ckpt,
                on_log=on_log,
                on_step=lambda step: bar.update(task, completed=step),
            )
            if result.resumed_from:
                console.print(f"{name}: resumed from step {result.resumed_from} of {ckpt}")
            summary = {
                "final_loss": training.final_loss(result.history),
                "train_time_s": result.state["train_time_s"],
                "steps": result.state["step"],
                **schedules.summarize(diffusion.betas_np),
            }
            run.log_metrics(summary)
            run.log_artifact(ckpt, "model")
            summaries[name] = summary
    write_json(paths.TRAIN_METRICS, summaries)
