"""Data-parallel training under torchrun: which process this is, and summing across processes.

Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op for one process,
so the training code is the same either way.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init(device: torch.device) -> Context:
    """Join the process group that torchrun describes (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        return Context()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # nccl talks to the GPU of this process's LOCAL_RANK
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 outside torchrun); for printing only on rank 0."""
    return int(os.environ.get("RANK", 0))


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def end_launched_process(code: int) -> int:
    """Destroy the process group and, in a process torchrun launched, end the process at once
    with ``code`` (``os._exit``, after flushing stdout and stderr); elsewhere return ``code``.

    Why not a normal exit: ``DistributedDataParallel`` (torch 2.13) leaves references to the
    process group that outlive it, so ``destroy_process_group`` cannot free the group. Its C++
    object, with gloo's worker and socket threads, is then destroyed during the interpreter's
    teardown, and now and then a thread is destroyed unjoined there: "terminate called without
    an active exception", SIGABRT, after the run was saved (docs/distributed.md). By this point
    every file has been written and renamed into place, so nothing is lost by skipping teardown.
    """
    shutdown()
    if int(os.environ.get("WORLD_SIZE", 1)) == 1:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def all_reduce_sum(tensor: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Sum ``tensor`` over all processes, in place; returns it."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_process(flag: bool, ctx: Context, device: torch.device) -> bool:
    """True on every process if it is true on one (used so all stop at the same step)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(t, ctx).item() > 0)


def broadcast_object(obj, ctx: Context):
    """Rank 0's value of a small picklable object (e.g. a path), on every process."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj, ctx: Context) -> list:
    """Every process's value of a small picklable object, in rank order, on every process."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
