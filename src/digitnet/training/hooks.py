"""What happens after each training step, as small objects: the weight average, the loss trace,
periodic checkpoints, progress, TensorBoard, and a stop request from Ctrl-C or SIGTERM.

``train_one_epoch`` calls one function after every step; ``StepHooks`` is that function, and
each hook it runs does one thing. The run (``digitnet.training.run``) builds them per epoch.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from digitnet.training import distributed
from digitnet.training.epoch import RunningStats

TRACE_EVERY = 50  # steps between points of the per-step loss curve in the history


class Reporter(Protocol):
    """Where progress goes (``digitnet.commands.progress`` draws it; tests use the silent one)."""

    def resume(self, epoch: int, step: int, steps: int) -> None: ...
    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None: ...
    def step(self, done: int, stats: RunningStats) -> None: ...
    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None: ...


class SilentReporter:
    def resume(self, epoch: int, step: int, steps: int) -> None: ...
    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None: ...
    def step(self, done: int, stats: RunningStats) -> None: ...
    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None: ...


class EpochTally:
    """The epoch's [loss sum, correct, images] over all processes, as if never interrupted.

    ``carried`` came from a checkpoint; ``latest`` is train_one_epoch's running stats since.
    ``total`` sums over processes, so every process must call it at the same steps.
    """

    def __init__(self, carried: list[float] | None = None, trace_from: list[float] | None = None,
                 ) -> None:
        self.carried = list(carried or [0.0] * 3)
        self.trace_from = list(trace_from or [0.0] * 3)
        self.latest: RunningStats | None = None

    def total(self, ctx: distributed.Context, device: torch.device) -> list[float]:
        local = torch.zeros(3, dtype=torch.float64, device=device)
        if self.latest is not None:
            local[0], local[1], local[2] = self.latest.loss_sum, self.latest.correct, self.latest.images
        distributed.all_reduce_sum(local, ctx)
        return [a + b for a, b in zip(self.carried, local.tolist(), strict=True)]


class StopRequest:
    """Ctrl-C and SIGTERM become a request to stop; ``requested`` agrees over all processes."""

    def __init__(self, ctx: distributed.Context, device: torch.device) -> None:
        self.ctx, self.device = ctx, device
        self.local = False

    def requested(self) -> bool:
        """Collective under torchrun: every process asks at the same points."""
        return distributed.any_process(self.local, self.ctx, self.device)

    @contextmanager
    def listening(self) -> Iterator[StopRequest]:
        def handler(_signum, _frame):
            self.local = True

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(ValueError):  # not the main thread: signals stay as they are
                previous[sig] = signal.signal(sig, handler)
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


class EmaHook:
    """Updates the exponential moving average of the weights after every step."""

    def __init__(self, ema: AveragedModel, model: nn.Module) -> None:
        self.ema, self.model = ema, model

    def __call__(self, done: int, stats: RunningStats) -> None:
        self.ema.update_parameters(self.model)


class TraceHook:
    """Adds a point of mean loss and accuracy over the last ``TRACE_EVERY`` steps to the history."""

    def __init__(self, steps: list[dict[str, float]], tally: EpochTally, first_step: int,
                 ctx: distributed.Context, device: torch.device) -> None:
        self.steps, self.tally, self.first_step = steps, tally, first_step
        self.ctx, self.device = ctx, device

    def __call__(self, done: int, stats: RunningStats) -> None:
        if done % TRACE_EVERY:
            return
        now = self.tally.total(self.ctx, self.device)
        loss_sum, correct, images = (a - b for a, b in zip(now, self.tally.trace_from, strict=True))
        self.steps.append({"step": self.first_step + done, "loss": loss_sum / max(images, 1),
                           "accuracy": correct / max(images, 1)})
        self.tally.trace_from = now


class Board(Protocol):
    """Where the TensorBoard hook writes (``digitnet.training.tensorboard.Board``)."""

    def step(self, step: int, point: dict[str, float], lr: float, seconds_per_step: float) -> None: ...


class TensorBoardHook:
    """Writes each new point of the loss trace to TensorBoard, with the learning rate and the
    mean wall-clock time per step since the previous point. It reads what ``TraceHook`` (which
    must run before it) computed, so it adds no read from the device."""

    def __init__(self, board: Board, steps: list[dict[str, float]], optimizer: torch.optim.Optimizer,
                 first_step: int) -> None:
        self.board, self.steps, self.optimizer = board, steps, optimizer
        self.seen = len(steps)
        self.last_step, self.last_time = first_step, time.perf_counter()

    def __call__(self, done: int, stats: RunningStats) -> None:
        if len(self.steps) == self.seen:
            return
        self.seen = len(self.steps)
        point, now = self.steps[-1], time.perf_counter()
        step = int(point["step"])
        self.board.step(step, point, self.optimizer.param_groups[0]["lr"],
                        (now - self.last_time) / max(step - self.last_step, 1))
        self.last_step, self.last_time = step, now


class CheckpointHook:
    """Saves a checkpoint every ``every`` steps (``save(step)`` is collective)."""

    def __init__(self, every: int, save: Callable[[int], None]) -> None:
        self.every, self.save = every, save

    def __call__(self, done: int, stats: RunningStats) -> None:
        if done % self.every == 0:
            self.save(done)


class ProgressHook:
    """Shows the epoch's running loss and accuracy, counting the steps before a resume too."""

    def __init__(self, reporter: Reporter, carried: list[float]) -> None:
        self.reporter, self.carried = reporter, carried

    def __call__(self, done: int, stats: RunningStats) -> None:
        if any(self.carried):
            loss_sum, correct, images = self.carried
            stats = RunningStats(stats.loss_sum + loss_sum, stats.correct + int(correct),
                                 stats.images + int(images))
        self.reporter.step(done, stats)


class StepHooks:
    """The one function ``train_one_epoch`` calls after each step: runs the hooks, then answers
    whether to stop. The tally is updated first, since the trace and checkpoints read it."""

    def __init__(self, tally: EpochTally, hooks: list[Callable[[int, RunningStats], None]],
                 stop: StopRequest) -> None:
        self.tally, self.hooks, self.stop = tally, hooks, stop

    def __call__(self, done: int, stats: RunningStats) -> bool:
        self.tally.latest = stats
        for hook in self.hooks:
            hook(done, stats)
        return self.stop.requested()
