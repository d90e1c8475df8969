"""The training loop and self-describing checkpoints.

The loop reads top to bottom: learning rate -> batch -> loss -> backward -> clip -> step -> EMA
-> log -> checkpoint. Everything random in it is a function of (seed, step) or lives in the
checkpoint, so a run killed and resumed from its last checkpoint ends with bit-identical weights
on the CPU:
- data order: epoch ``e`` is ``randperm`` seeded with (seed, e), so a batch needs no loader state;
- timesteps and noise: one ``torch.Generator`` whose state is saved;
- global python/numpy/torch/CUDA generators: saved and restored too (dropout uses torch's).

Under torchrun (``distributed``) every rank draws the global batch from these same streams and keeps
its slice; DistributedDataParallel averages the gradients, rank 0 alone writes the checkpoint, and
the logged loss is the global batch's. All ranks hold identical weights and generator states, so
rank 0's checkpoint resumes every rank exactly. (Dropout masks come from each rank's global
generator, seeded alike: with dropout > 0 the ranks share a mask pattern, unlike one process.)
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .config import ModelConfig, TrainConfig, fingerprint
from .diffusion import GaussianDiffusion
from .errors import CheckpointError, TrainingDiverged
from .files import atomic_path
from .runtime import autocast, derived_seed, resolve_precision, rng_states, seed_everything, set_rng_states
from .unet import UNet

CHECKPOINT_FORMAT = 1


def build_model(cfg: ModelConfig, in_channels: int) -> UNet:
    return UNet(
        in_channels=in_channels,
        base_channels=cfg.base_channels,
        channel_mults=cfg.channel_mults,
        num_res_blocks=cfg.num_res_blocks,
        attention_heads=cfg.attention_heads,
        norm_groups=cfg.norm_groups,
        dropout=cfg.dropout,
        num_classes=cfg.num_classes,
        class_embedding=cfg.class_embedding,
    )


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then constant (as in Ho et al.)."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr


def batch_indices(num_images: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of the images in batch ``step``: epochs are seeded permutations, last partial batch dropped."""
    per_epoch = num_images // batch_size
    if per_epoch == 0:
        raise ValueError(f"train.batch_size={batch_size} is larger than the {num_images} training images")
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(num_images, generator=torch.Generator().manual_seed(derived_seed(seed, epoch)))
    return perm[k * batch_size : (k + 1) * batch_size]


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.lerp_(p, 1.0 - decay)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``: tensors and plain containers only, no code from the file runs."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, foreign pickle, unsupported global ...
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of this project (format {CHECKPOINT_FORMAT})")
    return state


@dataclass
class TrainResult:
    state: dict[str, Any]
    history: list[dict[str, Optional[float]]] = field(default_factory=list)
    resumed_from: int = 0


def train(
    *,
    schedule: str,
    diffusion: GaussianDiffusion,
    images: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    seed: int,
    lineage: dict[str, Any],
    device: torch.device,
    checkpoint_path: Path,
    on_log: Callable[[dict[str, Optional[float]]], None] = lambda row: None,
    on_step: Callable[[int], None] = lambda step: None,
) -> TrainResult:
    """Train eps_theta on ``images`` (uint8 [N, C, H, W]) with the simple loss; resume when possible.

    A class-conditional model (``model_cfg.num_classes`` > 0) needs ``labels`` [N]; each batch's labels
    become the null class with probability ``train_cfg.cond_drop_prob`` (classifier-free guidance).

    A checkpoint at ``checkpoint_path`` whose lineage fingerprint equals that of ``lineage`` is
    resumed (or returned as is when finished); any other one is replaced by a fresh run.
    ``train_cfg.precision`` bf16 runs the forward pass and loss under bf16 autocast where the device
    has native bf16 (``runtime.resolve_precision``), fp32 elsewhere (callers put the resolved one in
    ``lineage``, as ``pipeline.lineage.training`` does).
    ``on_log`` receives a row every ``log_every`` steps: step, loss, lr, images_per_s and
    ``loss_bucket_i``, the mean loss of timesteps in the i-th of ``loss_buckets`` equal ranges of t.
    Inside a torchrun process group the rows are the global batch's on every rank, and only rank 0
    writes the checkpoint (callers log from rank 0 only).
    """
    from .data import to_model_range

    precision = resolve_precision(train_cfg.precision, device)
    lineage_id = fingerprint(lineage)
    conditional = model_cfg.num_classes > 0
    if conditional and (labels is None or len(labels) != len(images)):
        raise ValueError(f"a class-conditional model needs one label per training image ({len(images)})")
    seed_everything(seed)
    model = build_model(model_cfg, images.shape[1]).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    noise_gen = torch.Generator(device=device).manual_seed(seed)
    step, history, train_time = 0, [], 0.0

    state = _resumable_state(checkpoint_path, lineage_id)
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        noise_gen.set_state(state["rng"]["noise"].to("cpu"))
        set_rng_states(state["rng"]["global"])
        step, history, train_time = state["step"], list(state["history"]), state["train_time_s"]
    resumed_from = step
    for row in history:
        on_log(row)
    # One process: the net itself and the whole batch. Several: DDP (gradients averaged across the
    # ranks in backward) and this rank's slice of the global batch.
    distributed_run = distributed.world_size() > 1
    forward = DistributedDataParallel(model) if distributed_run else model
    share = distributed.local_slice(train_cfg.batch_size)
    writes_checkpoints = distributed.rank() == 0

    def snapshot() -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "schedule": schedule,
            "lineage": lineage,
            "lineage_fingerprint": lineage_id,
            "in_channels": images.shape[1],
            "step": step,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {"noise": noise_gen.get_state(), "global": rng_states()},
            "history": history,
            "train_time_s": train_time,
        }

    T, buckets = diffusion.num_timesteps, train_cfg.loss_buckets
    window_loss = torch.zeros((), device=device)
    bucket_sum = torch.zeros(buckets, device=device)
    bucket_count = torch.zeros(buckets, device=device)
    window_start, window_steps = time.perf_counter(), 0
    model.train()
    while step < train_cfg.steps:
        lr = learning_rate(step, train_cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # The global batch's draws, then this rank's rows (all of them with one process).
        idx = batch_indices(len(images), train_cfg.batch_size, step, seed)
        x0 = to_model_range(images[idx[share]]).to(device)
        t = torch.randint(0, T, (len(idx),), device=device, generator=noise_gen)[share]
        eps = torch.randn((len(idx), *x0.shape[1:]), device=device, generator=noise_gen)[share]
        net = forward
        if conditional:  # drawn only here, so an unconditional run's random streams are what they always were
            y = labels[idx].to(device)
            drop = torch.rand(y.shape, device=device, generator=noise_gen) < train_cfg.cond_drop_prob
            y = torch.where(drop, torch.full_like(y, model_cfg.num_classes), y)[share]
            net = lambda x, t: forward(x, t, y)  # noqa: E731 (binds this batch's labels)

        with autocast(precision, device):
            losses = diffusion.training_losses(net, x0, t, eps)
        loss = losses.mean()
        # The global batch's loss (the mean of equal slices' means), so every rank stops alike.
        global_loss = distributed.mean_over_ranks(loss.detach())
        if not torch.isfinite(global_loss):  # a CPU-GPU sync point; cheap next to a U-Net step
            raise TrainingDiverged(schedule, step + 1, global_loss.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        if not torch.isfinite(grad_norm):  # a finite loss can still have inf gradients: never step on them
            raise TrainingDiverged(schedule, step + 1, float(grad_norm), what="gradient norm")
        optimizer.step()
        ema_update(ema, model, train_cfg.ema_decay)
        step += 1
        on_step(step)

        window_loss += global_loss
        b = (t * buckets // T).long()
        bucket_sum.index_add_(0, b, losses.detach())
        bucket_count.index_add_(0, b, torch.ones_like(losses))
        window_steps += 1
        if step % train_cfg.log_every == 0 or step == train_cfg.steps:
            elapsed = time.perf_counter() - window_start
            train_time += elapsed
            if distributed_run:  # every rank's timesteps, as one process would have counted them
                distributed.all_reduce_sum(bucket_sum), distributed.all_reduce_sum(bucket_count)
            means = (bucket_sum / bucket_count.clamp(min=1)).tolist()
            row = {
                "step": step,
                "loss": window_loss.item() / window_steps,
                "lr": lr,
                "images_per_s": window_steps * train_cfg.batch_size / elapsed,
                **{f"loss_bucket_{i}": (m if c else None) for i, (m, c) in enumerate(zip(means, bucket_count.tolist()))},
            }
            history.append(row)
            on_log(row)
            window_loss.zero_(), bucket_sum.zero_(), bucket_count.zero_()
            window_steps = 0
            if writes_checkpoints and (step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps):
                save_checkpoint(checkpoint_path, snapshot())
            window_start = time.perf_counter()
    if state is not None and resumed_from == train_cfg.steps:
        return TrainResult(state=state, history=history, resumed_from=resumed_from)
    return TrainResult(state=snapshot(), history=history, resumed_from=resumed_from)


def _resumable_state(path: Path, lineage_id: str) -> Optional[dict[str, Any]]:
    if not path.exists():
        return None
    state = load_checkpoint(path)
    return state if state.get("lineage_fingerprint") == lineage_id else None


def final_rows(history: list[dict[str, Optional[float]]]) -> list[dict[str, Optional[float]]]:
    """The logged rows of the last tenth of training (at least one): what "final" means in the study."""
    return history[-max(1, len(history) // 10) :]


def final_loss(history: list[dict[str, Optional[float]]]) -> float:
    """Mean logged loss over the last tenth of training (``final_rows``)."""
    return float(np.mean([row["loss"] for row in final_rows(history)]))


def load_ema_model(state: dict[str, Any], device: torch.device) -> UNet:
    """The EMA network of a checkpoint, rebuilt from the config the checkpoint carries, in eval mode."""
    m = state["lineage"]["model"]
    model = build_model(ModelConfig(**{**m, "channel_mults": tuple(m["channel_mults"])}), state["in_channels"])
    model.load_state_dict(state["ema"])
    return model.to(device).eval()
