"""The training loop and self-describing checkpoints.

The loop reads top to bottom: learning rate -> batch -> loss -> backward -> clip -> step -> EMA
-> log -> checkpoint. Everything random in it is a function of (seed, step) or lives in the
checkpoint, so a run killed and resumed from its last checkpoint ends with bit-identical weights
on the CPU:
- data order: epoch ``e`` is ``randperm`` seeded with (seed, e), so a batch needs no loader state;
- timesteps and noise: one ``torch.Generator`` whose state is saved;
- global python/numpy/torch/CUDA generators: saved and restored too (dropout uses torch's), one
  set per rank under torchrun, so each rank resumes its own streams.
On a GPU the same holds when ``runtime.make_reproducible`` is on (deterministic kernels; the study's
default): bit-identical on one GPU model. A checkpoint resumes only on the device type that wrote it
(the generator states differ in kind): elsewhere ``CheckpointError`` names both; a finished one
serves as finished anywhere.

The step makes no host-device synchronisation: the training images and the epoch's order live on
the device, the coefficient tables are copied there once (``GaussianDiffusion._on``), the EMA is
one fused ``_foreach_lerp_`` and the finiteness checks are kept on the device and read once per log
interval (a non-finite loss or gradient stops training there, before any checkpoint is written).

Under torchrun (``distributed``) every rank draws the global batch from these same streams and keeps
its slice; DistributedDataParallel averages the gradients, rank 0 alone writes the checkpoint, and
the logged loss is the global batch's. All ranks hold identical weights and noise generator states.
(Dropout masks come from each rank's global generator, seeded alike: with dropout > 0 the ranks
share a mask pattern, unlike one process.)
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
from .hparams import ModelConfig, TrainConfig, fingerprint
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


def epoch_order(num_images: int, epoch: int, seed: int) -> torch.Tensor:
    """The order of the training images in ``epoch``: a permutation seeded with (seed, epoch)."""
    return torch.randperm(num_images, generator=torch.Generator().manual_seed(derived_seed(seed, epoch)))


def batch_indices(num_images: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of the images in batch ``step``: epochs are seeded permutations, last partial batch dropped."""
    per_epoch = _batches_per_epoch(num_images, batch_size)
    epoch, k = divmod(step, per_epoch)
    return epoch_order(num_images, epoch, seed)[k * batch_size : (k + 1) * batch_size]


def _batches_per_epoch(num_images: int, batch_size: int) -> int:
    if num_images < batch_size:
        raise ValueError(f"train.batch_size={batch_size} is larger than the {num_images} training images")
    return num_images // batch_size


class DeviceBatches:
    """``batch_indices`` for consecutive steps with the epoch's order on ``device``: one permutation
    and one host-to-device copy per epoch instead of one per step (same indices)."""

    def __init__(self, num_images: int, batch_size: int, seed: int, device: torch.device):
        self.n, self.batch, self.seed, self.device = num_images, batch_size, seed, device
        self.per_epoch = _batches_per_epoch(num_images, batch_size)
        self._epoch, self._order = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, epoch_order(self.n, epoch, self.seed).to(self.device, non_blocking=True)
        return self._order[k * self.batch : (k + 1) * self.batch]


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model: one fused multi-tensor lerp (the same arithmetic as a
    ``lerp_`` per parameter, in a handful of kernel launches instead of one per parameter)."""
    with torch.no_grad():
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)


def optimizer_for(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; fused into one kernel on CUDA (the CPU keeps PyTorch's default implementation, whose
    results the committed study was made with)."""
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)


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
    other_devices: frozenset[str] = frozenset(),
    on_log: Callable[[dict[str, Optional[float]]], None] = lambda row: None,
    on_step: Callable[[int], None] = lambda step: None,
) -> TrainResult:
    """Train eps_theta on ``images`` (uint8 [N, C, H, W]) with the simple loss; resume when possible.

    A class-conditional model (``model_cfg.num_classes`` > 0) needs ``labels`` [N]; each batch's labels
    become the null class with probability ``train_cfg.cond_drop_prob`` (classifier-free guidance).

    A checkpoint at ``checkpoint_path`` whose lineage fingerprint equals that of ``lineage`` is
    resumed (or returned as is when finished). One whose fingerprint is in ``other_devices`` (this
    lineage trained on another device type) is returned as is when finished and refused with
    ``CheckpointError`` when not (its generator states are of the other kind); any other one is
    replaced by a fresh run.
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
    state = _resumable_state(checkpoint_path, lineage_id, other_devices, lineage.get("device", device.type), train_cfg.steps)
    if state is not None and state["step"] == train_cfg.steps:  # finished: nothing to restore or run
        history = list(state["history"])
        for row in history:
            on_log(row)
        return TrainResult(state=state, history=history, resumed_from=state["step"])
    seed_everything(seed)
    model = build_model(model_cfg, images.shape[1]).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = optimizer_for(model, train_cfg, device)
    noise_gen = torch.Generator(device=device).manual_seed(seed)
    step, history, train_time = 0, [], 0.0

    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        noise_gen.set_state(state["rng"]["noise"].to("cpu"))
        ranks = state["rng"].get("ranks")
        set_rng_states(ranks[distributed.rank()] if ranks and len(ranks) == distributed.world_size() else state["rng"]["global"])
        step, history, train_time = state["step"], list(state["history"]), state["train_time_s"]
    resumed_from = step
    # Resident on the device for the whole run: a step then copies nothing from the host.
    images = images.to(device)
    labels = labels.to(device) if labels is not None else None
    batches = DeviceBatches(len(images), train_cfg.batch_size, seed, device)
    for row in history:
        on_log(row)
    # One process: the net itself and the whole batch. Several: DDP (gradients averaged across the
    # ranks in backward) and this rank's slice of the global batch.
    distributed_run = distributed.world_size() > 1
    forward = DistributedDataParallel(model) if distributed_run else model
    share = distributed.local_slice(train_cfg.batch_size)
    writes_checkpoints = distributed.rank() == 0

    def snapshot(rank_states: Optional[list] = None) -> dict[str, Any]:
        rank_states = rank_states or [rng_states()]
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
            "rng": {"noise": noise_gen.get_state(), "global": rank_states[0], "ranks": rank_states},
            "history": history,
            "train_time_s": train_time,
        }

    T, buckets = diffusion.num_timesteps, train_cfg.loss_buckets
    window_loss = torch.zeros((), device=device)
    bucket_sum = torch.zeros(buckets, device=device)
    bucket_count = torch.zeros(buckets, device=device)
    # The first step (1-based) whose loss (kind 0) or gradient norm (kind 1) was not finite, and its
    # value: kept on the device and read at the next log step, so no step waits for the GPU to say.
    bad_step = torch.zeros((), dtype=torch.long, device=device)
    bad_kind = torch.zeros((), dtype=torch.long, device=device)
    bad_value = torch.zeros((), device=device)
    window_start, window_steps = time.perf_counter(), 0
    model.train()
    while step < train_cfg.steps:
        lr = learning_rate(step, train_cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # The global batch's draws, then this rank's rows (all of them with one process).
        idx = batches(step)
        x0 = to_model_range(images[idx[share]])
        t = torch.randint(0, T, (len(idx),), device=device, generator=noise_gen)[share]
        eps = torch.randn((len(idx), *x0.shape[1:]), device=device, generator=noise_gen)[share]
        net = forward
        if conditional:  # drawn only here, so an unconditional run's random streams are what they always were
            y = labels[idx]
            drop = torch.rand(y.shape, device=device, generator=noise_gen) < train_cfg.cond_drop_prob
            y = torch.where(drop, torch.full_like(y, model_cfg.num_classes), y)[share]
            net = lambda x, t: forward(x, t, y)  # noqa: E731 (binds this batch's labels)

        with autocast(precision, device):
            losses = diffusion.training_losses(net, x0, t, eps)
        loss = losses.mean()
        # The global batch's loss (the mean of equal slices' means), so every rank stops alike.
        global_loss = distributed.mean_over_ranks(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        for kind, value in enumerate((global_loss, grad_norm)):
            first = (bad_step == 0) & ~torch.isfinite(value)
            bad_kind.copy_(torch.where(first, kind, bad_kind))
            bad_value.copy_(torch.where(first, value.detach().float(), bad_value))
            bad_step.copy_(torch.where(first, step + 1, bad_step))
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
            # The interval's one look at the finiteness flags, before anything of it is logged or saved.
            if int(bad_step):
                raise TrainingDiverged(schedule, int(bad_step), float(bad_value),
                                       what=("loss", "gradient norm")[int(bad_kind)])
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
            if step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps:
                rank_states = distributed.gather_objects(rng_states())  # every rank takes part
                if writes_checkpoints:
                    save_checkpoint(checkpoint_path, snapshot(rank_states))
            window_start = time.perf_counter()
    return TrainResult(state=snapshot(), history=history, resumed_from=resumed_from)


def _resumable_state(path: Path, lineage_id: str, other_devices: frozenset[str], here: str,
                     steps: int) -> Optional[dict[str, Any]]:
    """The checkpoint at ``path`` to resume or return, None to train afresh; refuses an unfinished one
    of this lineage written on another device type (``other_devices``: the fingerprints it would carry)."""
    if not path.exists():
        return None
    state = load_checkpoint(path)
    found = state.get("lineage_fingerprint")
    if found == lineage_id:
        return state
    if found in other_devices:
        if state.get("step") == steps:
            return state
        theirs = state.get("lineage", {}).get("device", "another device type")
        raise CheckpointError(
            f"{path}: an unfinished checkpoint (step {state.get('step')} of {steps}) trained on {theirs} cannot "
            f"resume on {here} (its random generator states are {theirs}'s); finish it on {theirs}, "
            f"or delete it to train afresh on {here}")
    return None


def final_rows(history: list[dict[str, Optional[float]]]) -> list[dict[str, Optional[float]]]:
    """The logged rows of the last tenth of training (at least one): what "final" means in the study."""
    return history[-max(1, len(history) // 10) :]


def final_loss(history: list[dict[str, Optional[float]]]) -> float:
    """Mean logged loss over the last tenth of training (``final_rows``)."""
    return float(np.mean([row["loss"] for row in final_rows(history)]))


def load_ema_model(state: dict[str, Any], device: torch.device) -> UNet:
    """The EMA network of a checkpoint, rebuilt from the config the checkpoint carries, in eval mode."""
    m = state["lineage"]["model"]
    model = build_model(ModelConfig(**{"prediction": "eps", **m, "channel_mults": tuple(m["channel_mults"])}), state["in_channels"])
    model.load_state_dict(state["ema"])
    return model.to(device).eval()
