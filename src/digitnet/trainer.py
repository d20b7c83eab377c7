"""A whole training run: data, model, epochs, evaluation, checkpoints and the saved result.

``fit`` returns the run's metrics and reports progress through a ``Reporter`` (see
``digitnet.progress``), so it prints nothing itself. On Ctrl-C or SIGTERM it saves a checkpoint
at the current step and raises ``Interrupted``; ``fit(..., resume=True)`` continues from there.
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from digitnet import distributed, hardware, runs
from digitnet.augment import Augmentation
from digitnet.config import TrainConfig
from digitnet.datasets import Dataset, load
from digitnet.errors import DigitnetError
from digitnet.evaluate import Evaluation, evaluate_sums, from_sums
from digitnet.models import build_model, count_parameters
from digitnet.preprocess import to_tensor
from digitnet.train import (
    RunningStats,
    epoch_order,
    learning_rate,
    make_optimizer,
    steps_per_epoch,
    train_one_epoch,
)

STEP_TRACE_EVERY = 50  # steps between points of the per-step loss curve in the history


class Interrupted(Exception):
    """Training stopped early by a signal; a checkpoint was saved at ``epoch``/``step``."""

    def __init__(self, run_dir: Path, epoch: int, step: int) -> None:
        super().__init__(f"interrupted at epoch {epoch + 1}, step {step}")
        self.run_dir, self.epoch, self.step = run_dir, epoch, step


class Reporter(Protocol):
    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None: ...
    def step(self, done: int, stats: RunningStats) -> None: ...
    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None: ...


class SilentReporter:
    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None: ...
    def step(self, done: int, stats: RunningStats) -> None: ...
    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None: ...


@dataclass
class Split:
    """The tensors a run trains and measures on: images (N, 1, 28, 28) float, labels (N,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor  # validation images if held out, else the test set
    y_eval: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    eval_name: str  # "val" or "test"


def make_split(ds: Dataset, config: TrainConfig, device: torch.device) -> Split:
    """Apply --limit and --validation (the last N training images are held out)."""
    n = len(ds.x_train) if config.limit == 0 else min(config.limit, len(ds.x_train))
    if config.validation >= n:
        raise DigitnetError(
            f"--validation {config.validation} leaves no training images out of {n}; lower it"
        )
    x, y = to_tensor(ds.x_train[:n], device), torch.from_numpy(ds.y_train[:n]).long().to(device)
    x_test = to_tensor(ds.x_test, device)
    y_test = torch.from_numpy(ds.y_test).long().to(device)
    if config.validation:
        cut = n - config.validation
        return Split(x[:cut], y[:cut], x[cut:], y[cut:], x_test, y_test, "val")
    return Split(x, y, x_test, y_test, x_test, y_test, "test")


@dataclass
class _Flags:
    stop: bool = False
    signals: list[int] = field(default_factory=list)


@contextmanager
def stop_on_signals(flags: _Flags):
    """Turn Ctrl-C and SIGTERM into a request to stop after the current step."""
    def handler(signum, _frame):
        flags.stop = True
        flags.signals.append(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(ValueError):  # not the main thread: signals stay as they are
            previous[sig] = signal.signal(sig, handler)
    try:
        yield flags
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
            ctx: distributed.Context, autocast) -> Evaluation:
    """Evaluate on this process's share of (x, y) and add the counts up over all processes."""
    sums = evaluate_sums(model, x[ctx.rank :: ctx.world_size], y[ctx.rank :: ctx.world_size],
                         config.eval_batch_size, autocast)
    return from_sums(distributed.all_reduce_sum(sums, ctx))


def fit(config: TrainConfig, run_dir: Path | None = None, *,
        data_dir: str | Path | None = None, dataset: Dataset | None = None,
        resume: bool = False, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` (resuming its checkpoint if ``resume``); return metrics.

    Without ``run_dir`` a new ``runs/<timestamp>-<dataset>`` is made (named by process 0).
    The returned metrics carry the run directory as ``run_dir``.
    """
    reporter = reporter or SilentReporter()
    device = hardware.resolve_device(config.device)
    ctx = distributed.init(device)
    if run_dir is None:
        run_dir = Path(distributed.broadcast_object(str(runs.new_run_dir(config.dataset)), ctx))
    precision = hardware.resolve_precision(config.precision, device)
    threads = hardware.configure_threads(config.threads, config.deterministic)
    hardware.seed_everything(config.seed)
    autocast = partial(hardware.autocast, precision, device)

    ds = dataset or load(config.dataset, data_dir)
    split = make_split(ds, config, device)

    model = build_model(config.model, **config.model_args).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model.parameters(), device)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
           if config.ema else None)

    start_epoch, start_step, seconds = 0, 0, 0.0
    history: dict[str, Any] = {"epochs": [], "steps": []}
    if resume:
        ckpt, _ = runs.load_checkpoint(run_dir)
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        if ema is not None:
            ema.load_state_dict(ckpt.ema)
        torch.set_rng_state(ckpt.rng["torch"])  # dropout continues with the same masks
        start_epoch, start_step, seconds, history = (ckpt.epoch, ckpt.step, ckpt.train_seconds,
                                                     ckpt.history)
    elif ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        runs.write_config(run_dir, config, dataset_sha256=ds.sha256,
                          parameters=count_parameters(model), world_size=ctx.world_size,
                          precision=precision)

    train_model = model
    if ctx.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    n_train = len(split.x_train)
    n_steps = steps_per_epoch(n_train, config.batch_size)
    total_steps = n_steps * config.epochs

    def save(epoch: int, step: int) -> None:
        if ctx.is_main:
            runs.save_checkpoint(run_dir, runs.Checkpoint(
                epoch=epoch, step=step, model=model.state_dict(),
                optimizer=optimizer.state_dict(), ema=ema.state_dict() if ema else {},
                rng={"torch": torch.get_rng_state()}, history=history,
                train_seconds=seconds, world_size=ctx.world_size,
            ), config)

    flags = _Flags()
    final_model = model
    with stop_on_signals(flags):
        for epoch in range(start_epoch, config.epochs):
            first = start_step if epoch == start_epoch else 0
            trace_from = [0, 0.0, 0]  # images, loss sum, correct at the last trace point
            reporter.start_epoch(epoch, config.epochs, n_steps, first)

            def after_step(done: int, stats: RunningStats, epoch=epoch, trace_from=trace_from):
                if ema is not None:
                    ema.update_parameters(model)
                if done % STEP_TRACE_EVERY == 0 and ctx.is_main:
                    loss_sum, correct = stats.loss_sum.item(), stats.correct.item()
                    images = max(stats.images - trace_from[0], 1)
                    history["steps"].append({
                        "step": epoch * n_steps + done,
                        "loss": (loss_sum - trace_from[1]) / images,
                        "accuracy": (correct - trace_from[2]) / images,
                    })
                    trace_from[:] = [stats.images, loss_sum, correct]
                reporter.step(done, stats)
                if config.checkpoint_every and done % config.checkpoint_every == 0:
                    save(epoch, done)
                return distributed.any_process(flags.stop, ctx, device)

            started = time.perf_counter()
            result = train_one_epoch(
                train_model, optimizer, split.x_train, split.y_train,
                order=epoch_order(n_train, config.seed, epoch), batch_size=config.batch_size,
                start_step=first,
                lr_at=lambda s, e=epoch: learning_rate(config, e * n_steps + s, total_steps),
                autocast=autocast, label_smoothing=config.label_smoothing,
                rank=ctx.rank, world_size=ctx.world_size, after_step=after_step,
                transform=Augmentation() if config.augment else None,
            )
            seconds += time.perf_counter() - started
            if result.stopped:
                save(epoch, first + result.steps)
                raise Interrupted(run_dir, epoch, first + result.steps)

            final_model = ema.module if ema is not None else model
            sums = torch.tensor([result.loss * result.images, result.accuracy * result.images,
                                 result.images], dtype=torch.float64, device=device)
            distributed.all_reduce_sum(sums, ctx)
            measured = measure(final_model, split.x_eval, split.y_eval, config, ctx, autocast)
            record = {
                "epoch": epoch + 1,
                "train_loss": float(sums[0] / sums[2]) if result.images else None,
                "train_accuracy": float(sums[1] / sums[2]) if result.images else None,
                f"{split.eval_name}_loss": measured.loss,
                f"{split.eval_name}_accuracy": measured.accuracy,
                "seconds": seconds,
            }
            history["epochs"].append(record)
            reporter.end_epoch(epoch, record)
            reached = (config.target_accuracy and split.eval_name == "val"
                       and measured.accuracy >= config.target_accuracy)
            save(epoch + 1, 0)
            if reached:
                break

    test = measure(final_model, split.x_test, split.y_test, config, ctx, autocast)
    metrics = {
        "run_dir": str(run_dir),
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "train_seconds": seconds,
        "epochs": config.epochs,
        "epochs_run": len(history["epochs"]),
        "batch_size": config.batch_size,
        "train_images": n_train,
        "precision": precision,
        "threads": threads,
        "world_size": ctx.world_size,
        "per_class_accuracy": test.to_dict(ds.classes)["per_class_accuracy"],
        "confusion": test.confusion.tolist(),
        "history": history,
    }
    if ctx.is_main:
        runs.save_model(run_dir, final_model, config)
        runs.write_metrics(run_dir, metrics)
    return metrics
