"""One epoch of training and the pieces it needs: data order, optimizer (the learning rate
per step is ``schedules``').

``train_one_epoch`` returns its metrics and prints nothing; a callback after each step lets the
caller show progress, save checkpoints or ask it to stop.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from digitnet.errors import DigitnetError
from digitnet.runs.config import TrainConfig


@dataclass
class RunningStats:
    """Sums over the steps taken so far in an epoch (kept as tensors: no sync per step)."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    images: int = 0

    @property
    def loss(self) -> float:
        return self.loss_sum.item() / max(self.images, 1)

    @property
    def accuracy(self) -> float:
        return self.correct.item() / max(self.images, 1)


@dataclass
class EpochResult:
    loss: float  # mean training loss over this call's images
    accuracy: float  # fraction of this call's training images classified right
    images: int
    steps: int  # steps taken in this call
    stopped: bool  # the callback asked to stop before the epoch's end


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of ``n`` images in ``epoch``: a pure function of (seed, epoch).

    Being recomputable is what lets a resumed run, on any number of processes, continue with
    exactly the batches the interrupted one would have seen.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def check_shards(n: int, batch_size: int, world_size: int) -> None:
    """Refuse a split that would leave a process an empty share of some batch (its loss is NaN)."""
    last = n % batch_size or batch_size
    if min(batch_size, last) < world_size:
        raise DigitnetError(
            f"with {world_size} processes every batch needs at least {world_size} images, but "
            f"{n} images in batches of {batch_size} leave a last batch of {min(batch_size, last)}; "
            "change --batch-size or --limit"
        )


def make_optimizer(config: TrainConfig, params: Iterable[nn.Parameter],
                   device: torch.device) -> torch.optim.Optimizer:
    # The fused kernels do the whole update in one pass per tensor: same maths, fewer launches.
    fused = device.type in ("cpu", "cuda")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=True,
                               weight_decay=config.weight_decay, fused=fused)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, betas=(config.momentum, 0.999),
               weight_decay=config.weight_decay, fused=fused)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor,
               yb: torch.Tensor, batch_images: int, autocast: Callable[[], object] | None,
               label_smoothing: float, world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on this process's share (xb, yb) of a batch of ``batch_images``;
    returns the share's summed loss and its logits (b, classes), detached."""
    with autocast() if autocast else contextlib.nullcontext():
        logits = model(xb)  # (b, classes)
    loss_sum = F.cross_entropy(logits.float(), yb, label_smoothing=label_smoothing, reduction="sum")
    # The shard's sum over the whole batch's size, times world_size because DDP averages
    # gradients over processes: the gradient is the batch mean however the batch was split.
    loss = loss_sum * (world_size / batch_images)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss_sum.detach(), logits.detach()


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    order: torch.Tensor,
    batch_size: int,
    start_step: int = 0,
    lr_at: Callable[[int], float] | None = None,
    autocast: Callable[[], object] | None = None,
    label_smoothing: float = 0.0,
    rank: int = 0,
    world_size: int = 1,
    after_step: Callable[[int, RunningStats], bool] | None = None,
    transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> EpochResult:
    """Train on ``x`` (N, 1, 28, 28) and ``y`` (N,) in ``order``, from step ``start_step``.

    ``batch_size`` is the global batch; with ``world_size`` processes each takes its contiguous
    share of every batch (every share must be non-empty, see ``check_shards``), and the averaged
    gradient equals one process's on the whole batch.
    ``lr_at(step_in_epoch)`` sets the learning rate before each step. ``after_step(steps_done,
    stats)`` runs after every step and returns True to stop early (e.g. on Ctrl-C).
    """
    model.train()
    n_steps = steps_per_epoch(len(order), batch_size)
    # One gather per epoch, then every batch is a view: no per-batch copies of the images.
    xs, ys = x[order], y[order]
    stats = RunningStats(torch.zeros((), dtype=torch.float64, device=x.device),
                         torch.zeros((), dtype=torch.int64, device=x.device))
    step = start_step
    stopped = False
    while step < n_steps:
        lo = step * batch_size
        batch = slice(lo, min(lo + batch_size, len(order)))
        xb = xs[batch].tensor_split(world_size)[rank]  # (B / world, 1, 28, 28)
        yb = ys[batch].tensor_split(world_size)[rank]  # (B / world,)
        if transform is not None:
            xb = transform(xb, yb)  # the labels: some effects depend on the digit
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        loss_sum, logits = train_step(model, optimizer, xb, yb, batch.stop - batch.start,
                                      autocast, label_smoothing, world_size)
        stats.loss_sum += loss_sum
        stats.correct += (logits.argmax(1) == yb).sum()
        stats.images += len(yb)
        step += 1
        if after_step is not None and after_step(step, stats) and step < n_steps:
            stopped = True
            break
    return EpochResult(stats.loss, stats.accuracy, stats.images, step - start_step, stopped)

