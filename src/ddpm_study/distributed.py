"""Data-parallel training across processes (torchrun): the process group and its collectives.

One process per GPU (NCCL) or, on a CPU, per group of cores (gloo). Every rank draws the *global*
batch's data order, timesteps and noise from the same seeded streams and keeps its own slice of
it, so the ranks together compute exactly the single-process step: DistributedDataParallel
averages the gradients of equal slices, which is the gradient of the global mean loss. The loss
curve therefore equals a single-process run with the same global batch up to float summation
order, and the checkpoint (written by rank 0) holds everything a resume needs, as before.

Outside torchrun (no ``WORLD_SIZE`` in the environment) everything here is the identity: one rank,
no collectives, and the training loop runs exactly as it always did.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist

from .errors import ConfigError


STORE_ENV = "DDPM_STUDY_DIST_STORE"  # a file for the process group's rendezvous (c10d FileStore)


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def local_slice(global_batch: int) -> slice:
    """This rank's rows of a global batch (equal slices; the batch size is checked to divide)."""
    size, r = world_size(), rank()
    if global_batch % size:
        raise ValueError(f"train.batch_size={global_batch} does not split into {size} equal per-process batches")
    share = global_batch // size
    return slice(r * share, (r + 1) * share)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, in place; the identity with one process."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over ranks (a new tensor with several processes, ``t`` itself with one)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return t
    return all_reduce_sum(t.clone()) / dist.get_world_size()


def gather_objects(obj: object) -> list:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` with one process). A collective:
    every rank must call it."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def die_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this process when its parent dies.

    torchrun starts each worker in a session of its own, so killing the stage (``kill -9``, a killed
    ``dvc repro``) would otherwise leave the workers training — and writing the checkpoint a rerun
    resumes from. Applied to torchrun (by the stage) and to every worker (by ``process_group``).
    """
    if sys.platform != "linux":
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the call took effect
        os._exit(1)


@contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on CPU) and yield this rank's device.

    Without a launcher this yields ``device`` unchanged. Sockets stay on the loopback interface
    unless the user picked one (a single-node launch needs nothing else).
    """
    if not launched():
        yield device
        return
    die_with_parent()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"train.processes: process {local} has no GPU of its own "
                              f"({torch.cuda.device_count()} CUDA GPU(s)); expected at most one process per GPU")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    # torchrun's env:// store is a TCP server on every interface; a launcher that names a file store
    # (``STORE_ENV``, as the `train` stage does) keeps the rendezvous off the network entirely.
    store = os.environ.get(STORE_ENV)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                            init_method=f"file://{store}" if store else None,
                            rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                            device_id=device if device.type == "cuda" else None)
    try:
        yield device
    finally:
        dist.destroy_process_group()
