"""Stage `train`: one U-Net DDPM per listed schedule, resumable, tracked in MLflow."""

from __future__ import annotations

from ddpm_study import schedules, training
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.runtime import resolve_device

from . import lineage, outputs, records, tracking, trained
from .ui import console, progress


def run(cfg: StudyConfig) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = resolve_device(cfg.device)
    images, labels = trained.training_images(cfg), trained.training_labels(cfg)
    summaries = {}
    for name in cfg.schedule:
        diffusion = GaussianDiffusion(cfg.betas(name))
        ckpt = outputs.checkpoint(name)
        with records.schedule_run(cfg, name, "train") as run, progress() as bar:
            task = bar.add_task(f"train {name}", total=cfg.train.steps, info="")
            history: list[outputs.HistoryRow] = []

            def on_log(row: outputs.HistoryRow) -> None:
                history.append(row)
                outputs.write_train_history(name, history)
                run.log_train_rows([row])  # live curves; the record below adds nothing twice
                bar.update(task, completed=row["step"], info=f"loss {row['loss']:.4f}  {row['images_per_s']:.0f} img/s")

            result = training.train(
                schedule=name,
                diffusion=diffusion,
                images=images,
                labels=labels,
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
            summaries[name] = outputs.TrainSummary(
                final_loss=training.final_loss(result.history),
                train_time_s=result.state["train_time_s"],
                steps=result.state["step"],
                **schedules.summarize(diffusion.betas_np),
            )
            # Written after each schedule, so the record of this one finds its summary.
            outputs.write_train_metrics(summaries)
            records.record_train(run, name)
