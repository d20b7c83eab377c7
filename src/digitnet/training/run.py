"""A whole training run: data, model, epochs, evaluation, checkpoints and the saved result.

``fit`` returns the run's metrics and reports progress through a ``Reporter`` (see
``digitnet.commands.progress``), so it prints nothing itself. On Ctrl-C or SIGTERM it saves a checkpoint
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

from digitnet.datasets import Dataset, load
from digitnet.errors import DigitnetError
from digitnet.evaluate import Evaluation, evaluate_sums, from_sums
from digitnet.models import build_model, count_parameters
from digitnet.preprocess import to_tensor
from digitnet.training import devices, distributed, runs
from digitnet.training.augment import Augmentation
from digitnet.training.config import TrainConfig
from digitnet.training.epoch import (
    RunningStats,
    check_shards,
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


class EpochTally:
    """The epoch's [loss sum, correct, images] over all processes, as if never interrupted.

    ``carried`` came from a checkpoint; ``latest`` is train_one_epoch's running stats since.
    ``total`` sums over processes, so every process must call it at the same steps.
    """

    def __init__(self, carried: list[float], trace_from: list[float]) -> None:
        self.carried, self.trace_from = list(carried), list(trace_from)
        self.latest: RunningStats | None = None

    def total(self, ctx: distributed.Context, device: torch.device) -> list[float]:
        local = torch.zeros(3, dtype=torch.float64, device=device)
        if self.latest is not None:
            local[0], local[1], local[2] = self.latest.loss_sum, self.latest.correct, self.latest.images
        distributed.all_reduce_sum(local, ctx)
        return [a + b for a, b in zip(self.carried, local.tolist(), strict=True)]


def restore_streams(ckpt: runs.Checkpoint, ctx: distributed.Context, device: torch.device,
                    seed: int, global_step: int) -> None:
    """Continue each process's random streams (dropout) from the checkpoint.

    With the same number of processes each takes back its own state, so the run continues bit
    for bit. With another number there is no saved state for the new ranks: all restart from
    (seed, rank, step), which keeps the data order and optimizer exact but draws new masks.
    """
    if ckpt.world_size != ctx.world_size:
        devices.seed_streams(seed, ctx.rank, global_step)
        return
    suffix = f".{ctx.rank}"
    state = {k.removesuffix(suffix): v for k, v in ckpt.rng.items() if k.endswith(suffix)}
    if "torch" not in state:
        raise DigitnetError(f"checkpoint has no random state for process {ctx.rank}; "
                            "it was not written by this version of digitnet, start a new run")
    devices.set_rng_state(state, device)


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
    device = devices.resolve_device(config.device)
    ctx = distributed.init(device)
    # Only process 0 shows progress; the others train silently.
    reporter = (reporter or SilentReporter()) if ctx.is_main else SilentReporter()
    if run_dir is None:
        run_dir = Path(distributed.broadcast_object(str(runs.new_run_dir(config.dataset)), ctx))
    precision = devices.resolve_precision(config.precision, device)
    threads = devices.configure_threads(config.threads, config.deterministic)
    devices.seed_everything(config.seed)  # the same on every process: identical initial weights
    autocast = partial(devices.autocast, precision, device)

    ds = dataset or load(config.dataset, data_dir)
    split = make_split(ds, config, device)

    model = build_model(config.model, **config.model_args).to(device)
    channels_last = config.channels_last or devices.prefers_channels_last(device, precision)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    devices.seed_streams(config.seed, ctx.rank)  # each process its own dropout masks
    optimizer = make_optimizer(config, model.parameters(), device)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
           if config.ema else None)

    n_train = len(split.x_train)
    check_shards(n_train, config.batch_size, ctx.world_size)
    n_steps = steps_per_epoch(n_train, config.batch_size)
    total_steps = n_steps * config.epochs

    start_epoch, start_step, seconds = 0, 0, 0.0
    history: dict[str, Any] = {"epochs": [], "steps": []}
    tally = EpochTally([0.0] * 3, [0.0] * 3)
    if resume:
        ckpt, _ = runs.load_checkpoint(run_dir)
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        if ema is not None:
            ema.load_state_dict(ckpt.ema)
        start_epoch, start_step, seconds, history = (ckpt.epoch, ckpt.step, ckpt.train_seconds,
                                                     ckpt.history)
        restore_streams(ckpt, ctx, device, config.seed, start_epoch * n_steps + start_step)
        tally = EpochTally(ckpt.epoch_sums, ckpt.trace_from)
        history.setdefault("resumed", []).append(
            {"epoch": start_epoch, "step": start_step, "world_size": ctx.world_size})
    elif ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        runs.write_config(run_dir, config, dataset_sha256=ds.sha256,
                          parameters=count_parameters(model), world_size=ctx.world_size,
                          precision=precision, device=device.type, threads=threads,
                          channels_last=channels_last)

    train_model = model
    if ctx.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def save(epoch: int, step: int) -> None:
        # Collective: every process passes here at the same step.
        sums = tally.total(ctx, device) if step else [0.0] * 3
        states = distributed.all_gather_object(devices.rng_state(device), ctx)
        if ctx.is_main:
            runs.save_checkpoint(run_dir, runs.Checkpoint(
                epoch=epoch, step=step, model=model.state_dict(),
                optimizer=optimizer.state_dict(), ema=ema.state_dict() if ema else {},
                rng={f"{k}.{rank}": v for rank, state in enumerate(states) for k, v in state.items()},
                history=history, train_seconds=seconds, world_size=ctx.world_size,
                epoch_sums=sums, trace_from=tally.trace_from if step else [0.0] * 3,
            ), config)

    flags = _Flags()
    final_model = ema.module if ema is not None else model  # what is measured and saved
    with stop_on_signals(flags):
        for epoch in range(start_epoch, config.epochs):
            first = start_step if epoch == start_epoch else 0
            if epoch != start_epoch:
                tally = EpochTally([0.0] * 3, [0.0] * 3)
            reporter.start_epoch(epoch, config.epochs, n_steps, first)

            def after_step(done: int, stats: RunningStats, epoch=epoch, tally=tally):
                tally.latest = stats
                if ema is not None:
                    ema.update_parameters(model)
                if done % STEP_TRACE_EVERY == 0:
                    now = tally.total(ctx, device)
                    loss_sum, correct, images = (a - b for a, b in zip(now, tally.trace_from,
                                                                       strict=True))
                    history["steps"].append({"step": epoch * n_steps + done,
                                             "loss": loss_sum / max(images, 1),
                                             "accuracy": correct / max(images, 1)})
                    tally.trace_from = now
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

            loss_sum, correct, images = tally.total(ctx, device)
            measured = measure(final_model, split.x_eval, split.y_eval, config, ctx, autocast)
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / images if images else None,
                "train_accuracy": correct / images if images else None,
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
        "world_size": ctx.world_size,
        "device": device.type,
        "threads": threads,
        "per_class_accuracy": test.to_dict(ds.classes)["per_class_accuracy"],
        "confusion": test.confusion.tolist(),
        "history": history,
    }
    if ctx.is_main:
        runs.save_model(run_dir, final_model, config)
        runs.write_metrics(run_dir, metrics)
    return metrics
