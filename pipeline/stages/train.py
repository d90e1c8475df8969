"""Stage `train`: one U-Net DDPM per listed schedule, resumable, tracked in MLflow.

With ``train.processes`` = N > 1 the stage relaunches itself under torchrun with N processes
(DistributedDataParallel, one per GPU, or gloo processes on a CPU). Rank 0 alone writes
checkpoints, the stage's files and MLflow; the other ranks only train.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ddpm_study import distributed, schedules, training
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.errors import ConfigError, StudyError
from ddpm_study.runtime import resolve_precision, setup_device

from .. import checkpoints, lineage, outputs, records, tracking
from ..console import console, progress


def run(cfg: StudyConfig, params: Path) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = setup_device(cfg.device, cfg.reproducible)
    if cfg.train.processes > 1 and not distributed.launched():
        return launch(cfg, params, device)
    with distributed.process_group(device) as device:
        if distributed.rank() == 0:
            train_all(cfg, device)
        else:  # the same steps, collectives included, with nothing written or logged
            images, labels = checkpoints.training_images(cfg), checkpoints.training_labels(cfg)
            for name in cfg.schedule:
                train_schedule(cfg, name, cfg.gaussian_diffusion(name), images, labels, device)


def train_schedule(cfg: StudyConfig, name: str, diffusion: GaussianDiffusion, images: torch.Tensor,
                   labels: torch.Tensor | None, device: torch.device, **callbacks) -> training.TrainResult:
    """Train (or resume) schedule ``name`` as the study configures it; ``callbacks``: on_log, on_step."""
    return training.train(schedule=name, diffusion=diffusion, images=images, labels=labels, model_cfg=cfg.model,
                          train_cfg=cfg.train, seed=cfg.seed, lineage=(run := lineage.training(cfg, name)), device=device,
                          checkpoint_path=outputs.checkpoint(name), other_devices=lineage.other_devices(run, cfg.train.precision),
                          **callbacks)


def launch(cfg: StudyConfig, params: Path, device: torch.device) -> None:
    """Run this stage again under torchrun with ``train.processes`` processes on this node."""
    n = cfg.train.processes
    if device.type == "cuda" and n > torch.cuda.device_count():
        raise ConfigError(f"train.processes: invalid value {n}: one process per GPU and this machine has "
                          f"{torch.cuda.device_count()} CUDA GPU(s)")
    console.print(f"train: launching {n} processes ({'NCCL, one per GPU' if device.type == 'cuda' else 'gloo on the CPU'})")
    with tempfile.TemporaryDirectory(prefix="ddpm-torchrun-") as folder:
        cmd, env = torchrun(n, Path(folder), cpu=device.type == "cpu")
        code = subprocess.run([*cmd, "-m", "pipeline.cli", "train", "--params", str(params)], env=env,
                              preexec_fn=distributed.die_with_parent).returncode
    if code != 0:
        raise StudyError(f"train: the {n} torchrun processes failed (exit code {code}); the first error is printed above")


def torchrun(nproc: int, folder: Path, cpu: bool) -> tuple[list[str], dict[str, str]]:
    """The torchrun command line (up to the program) and environment for ``nproc`` processes on this node.

    Nothing listens beyond 127.0.0.1: the rendezvous and the process group meet in file stores in
    ``folder`` (torchrun's default TCP stores bind every interface); the workers put gloo's and
    NCCL's sockets on the loopback interface themselves (``distributed.process_group``).
    """
    env = {**os.environ, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", distributed.STORE_ENV: str(folder / "group")}
    if cpu and "OMP_NUM_THREADS" not in os.environ:
        # torchrun would set 1 thread; give each process its share of the cores instead.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={nproc}",
           "--rdzv-backend=c10d", f"--rdzv-endpoint={folder / 'rendezvous'}", "--rdzv-conf=store_type=file",
           "--local-addr=127.0.0.1"]
    return cmd, env


def train_all(cfg: StudyConfig, device: torch.device) -> None:
    images, labels = checkpoints.training_images(cfg), checkpoints.training_labels(cfg)
    precision = resolve_precision(cfg.train.precision, device)
    if precision != cfg.train.precision:
        console.print(f"train: train.precision is {cfg.train.precision} but this {device.type} has no native bf16: training in {precision}")
    summaries = {}
    for name in cfg.schedule:
        diffusion = cfg.gaussian_diffusion(name)
        ckpt = outputs.checkpoint(name)
        with records.schedule_run(cfg, name, "train") as run, run.system_metrics(), progress() as bar:
            task = bar.add_task(f"train {name}", total=cfg.train.steps, info="")
            history: list[outputs.HistoryRow] = []

            def on_log(row: outputs.HistoryRow) -> None:
                history.append(row)
                outputs.write_train_history(name, history)
                run.log_train_rows([row])  # live curves; the record below adds nothing twice
                bar.update(task, completed=row["step"], info=f"loss {row['loss']:.4f}  {row['images_per_s']:.0f} img/s")

            result = train_schedule(cfg, name, diffusion, images, labels, device, on_log=on_log,
                                    on_step=lambda step: bar.update(task, completed=step))
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
