"""A whole training run: set up, start (or resume), the epochs, finish.

``fit`` builds a ``Trainer``, which holds what the run carries from step to step (its
directory, config, machine set-up, model and optimizer, data split, position, reporter and
stop request), and calls ``start``, ``train`` and ``finish`` on it. It returns the run's
metrics and reports progress through a ``Reporter``, so it prints nothing itself. What happens
after each step is a hook object (``digitnet.training.hooks``). On Ctrl-C or SIGTERM, at any
point (a step, the end-of-epoch evaluation, the final test), the run saves a checkpoint within
about a second and raises ``Interrupted``; ``fit(..., resume=True)`` continues from there with
the same batches, dropout masks and optimizer state. With ``config.tensorboard`` a
``tensorboard.Board`` logs the run for TensorBoard as it goes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from digitnet import atomic, runs
from digitnet.datasets import Dataset, load
from digitnet.errors import DigitnetError
from digitnet.evaluate import Evaluation, evaluate_sums, from_sums
from digitnet.models import build_model, count_parameters
from digitnet.preprocess import input_tensor
from digitnet.runs.config import NOT_A_DIGIT, TrainConfig
from digitnet.training import checkpoints, devices, distributed, negatives, schedules, seeding
from digitnet.training.augment import for_run
from digitnet.training.calibrate import calibrate
from digitnet.training.epoch import (
    check_shards,
    epoch_order,
    make_optimizer,
    steps_per_epoch,
    train_one_epoch,
)
from digitnet.training.hooks import (
    CheckpointHook,
    EmaHook,
    EpochTally,
    ProgressHook,
    Reporter,
    SilentReporter,
    StepHooks,
    StopRequest,
    TensorBoardHook,
    TraceHook,
)

if TYPE_CHECKING:
    from digitnet.training.tensorboard import Board


class Interrupted(Exception):
    """Training stopped early by a signal; a checkpoint was saved at ``epoch``/``step``."""

    def __init__(self, run_dir: Path, epoch: int, step: int) -> None:
        super().__init__(f"interrupted at epoch {epoch + 1}, step {step}")
        self.run_dir, self.epoch, self.step = run_dir, epoch, step


@dataclass
class Setup:
    """Where and how the run computes, decided once from the config and the machine."""

    device: torch.device
    ctx: distributed.Context
    precision: str  # "fp32" or "bf16", resolved from "auto"
    threads: int
    channels_last: bool

    def autocast(self):
        return devices.autocast(self.precision, self.device)


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


@dataclass
class Learner:
    """The network being trained and what updates it."""

    model: nn.Module  # the plain module: what is checkpointed
    optimizer: torch.optim.Optimizer
    ema: AveragedModel | None
    train_model: nn.Module | None = None  # what the steps call: the model, or DDP around it

    @property
    def final(self) -> nn.Module:
        """What is measured and saved: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.model


@dataclass
class Position:
    """Where the run stands: the epoch in progress, steps of it done, time spent, history."""

    epoch: int = 0
    step: int = 0
    seconds: float = 0.0
    history: dict[str, Any] = field(default_factory=lambda: {"epochs": [], "steps": []})
    tally: EpochTally = field(default_factory=EpochTally)
    evaluation: Evaluation | None = None  # the last epoch's, not saved: finish may reuse it


def set_up(config: TrainConfig) -> Setup:
    """Device, process group, precision, threads, memory format, and the initial-weight seed."""
    device = devices.resolve_device(config.device)
    ctx = distributed.init(device)
    precision = devices.resolve_precision(config.precision, device)
    threads = devices.configure_threads(config.threads, config.deterministic)
    channels_last = config.channels_last or devices.prefers_channels_last(device, precision)
    seeding.seed_everything(config.seed)  # the same on every process: identical initial weights
    return Setup(device, ctx, precision, threads, channels_last)


def make_split(ds: Dataset, config: TrainConfig, device: torch.device,
               data_dir: str | Path | None = None) -> Split:
    """Apply --limit and --validation (the last N training images are held out), and add
    --negatives."""
    cut = split_sizes(ds, config)[1]  # the training share: images [0, cut)
    x, y = input_tensor(ds.x_train[:cut], device), torch.from_numpy(ds.y_train[:cut]).long().to(device)
    x_test = input_tensor(ds.x_test, device)
    y_test = torch.from_numpy(ds.y_test).long().to(device)
    # Fashion-MNIST is read once, for the negatives of both splits.
    fashion = read_fashion(config, data_dir)
    x, y = with_negatives(x, y, config.negatives, fashion, (config.seed, 0))
    if not config.validation:
        return Split(x, y, x_test, y_test, x_test, y_test, "test")
    x_val, y_val = validation_split(ds, config, device, fashion)
    return Split(x, y, x_val, y_val, x_test, y_test, "val")


def split_sizes(ds: Dataset, config: TrainConfig) -> tuple[int, int]:
    """(training images in use, where the held-out ones begin): --limit and --validation."""
    n = len(ds.x_train) if config.limit == 0 else min(config.limit, len(ds.x_train))
    if config.validation >= n:
        raise DigitnetError(
            f"--validation {config.validation} leaves no training images out of {n}; lower it"
        )
    return n, n - config.validation


def read_fashion(config: TrainConfig, data_dir: str | Path | None) -> np.ndarray | None:
    """Fashion-MNIST's images for the negatives, when the run has any."""
    return negatives.fashion_images(load("fashion-mnist", data_dir)) if config.negatives else None


def validation_split(ds: Dataset, config: TrainConfig, device: torch.device,
                     fashion: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out digits, images (N, 1, 28, 28) and labels (N,), with their "not a digit"
    images: in the training share's proportion, from another seed than training's. Fitting a
    finished run again needs only these, not the training share's negatives (20,000 of them
    for the reader: 10 s to draw)."""
    n, cut = split_sizes(ds, config)
    x = input_tensor(ds.x_train[cut:n], device)
    y = torch.from_numpy(ds.y_train[cut:n]).long().to(device)
    return with_negatives(x, y, config.negatives * config.validation // cut, fashion, (config.seed, 1))


def with_negatives(x: torch.Tensor, y: torch.Tensor, n: int, fashion: np.ndarray | None,
                   seed: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) with ``n`` "not a digit" images (class 10) appended; the test set never gets any,
    so its figure stays MNIST's. Fashion-MNIST images and rendered letters, scribbles, shapes
    and specks, drawn from ``seed``."""
    if n == 0:
        return x, y
    images = input_tensor(negatives.pool(n, fashion, np.random.default_rng(seed)), x.device)
    return torch.cat([x, images]), torch.cat([y, torch.full((len(images),), NOT_A_DIGIT, device=y.device)])


def build_learner(config: TrainConfig, setup: Setup) -> Learner:
    model = build_model(config.model, **config.model_kwargs()).to(setup.device)
    if setup.channels_last:
        model = devices.to_channels_last(model)
    seeding.seed_streams(config.seed, setup.ctx.rank)  # each process its own dropout masks
    optimizer = make_optimizer(config, model.parameters(), setup.device)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
           if config.ema else None)
    return Learner(model, optimizer, ema)


def restore_streams(ckpt: checkpoints.Checkpoint, ctx: distributed.Context, device: torch.device,
                    seed: int, global_step: int) -> None:
    """Continue each process's random streams (dropout) from the checkpoint.

    With the same number of processes each takes back its own state, so the run continues bit
    for bit. With another number there is no saved state for the new ranks: all restart from
    (seed, rank, step), which keeps the data order and optimizer exact but draws new masks.
    """
    if ckpt.world_size != ctx.world_size:
        seeding.seed_streams(seed, ctx.rank, global_step)
        return
    suffix = f".{ctx.rank}"
    state = {k.removesuffix(suffix): v for k, v in ckpt.rng.items() if k.endswith(suffix)}
    if "torch" not in state:
        raise DigitnetError(f"checkpoint has no random state for process {ctx.rank}; "
                            "it was not written by this version of digitnet, start a new run")
    seeding.set_rng_state(state, device)


def match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each loaded optimizer state tensor its parameter's memory layout. A checkpoint
    stores tensors contiguous, and the fused optimizers step parameter and state together
    assuming one layout: a channels-last weight with a contiguous moment would not resume
    bit for bit."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape:
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def resume(run_dir: Path, config: TrainConfig, setup: Setup, learner: Learner,
           steps: int) -> Position:
    """The position saved in ``run_dir``'s checkpoint, with the learner's state restored."""
    ckpt, _ = checkpoints.load_checkpoint(run_dir)
    learner.model.load_state_dict(ckpt.model)
    learner.optimizer.load_state_dict(ckpt.optimizer)
    match_parameter_layout(learner.optimizer)
    if learner.ema is not None:
        learner.ema.load_state_dict(ckpt.ema)
    restore_streams(ckpt, setup.ctx, setup.device, config.seed, ckpt.epoch * steps + ckpt.step)
    ckpt.history.setdefault("resumed", []).append(
        {"epoch": ckpt.epoch + 1, "step": ckpt.step, "world_size": setup.ctx.world_size})
    return Position(ckpt.epoch, ckpt.step, ckpt.train_seconds, ckpt.history,
                    EpochTally(ckpt.epoch_sums, ckpt.trace_from))


@dataclass
class Trainer:
    """What a run carries from step to step, held once: where it writes, what it trains, on
    what, where it stands, and whom it tells. ``start`` begins or resumes, the loop (``train``)
    reads on one screen with its parts below it, and ``finish`` tests and saves. Every method
    that talks to other processes (``save``, ``evaluate``, ``stop.requested``) is called at the
    same points on all of them."""

    run_dir: Path
    config: TrainConfig
    setup: Setup
    learner: Learner
    split: Split
    reporter: Reporter
    stop: StopRequest
    position: Position = field(default_factory=Position)
    board: Board | None = None

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch."""
        return steps_per_epoch(len(self.split.x_train), self.config.batch_size)

    def start(self, ds: Dataset, *, resumed: bool) -> None:
        """A new run writes its config.json; a resumed one continues from its checkpoint."""
        setup, learner = self.setup, self.learner
        if resumed:
            self.position = resume(self.run_dir, self.config, setup, learner, self.steps)
            if self.position.epoch >= self.config.epochs and (self.run_dir / runs.METRICS_FILE).exists():
                # finished and saved: resuming would only test and save it again
                epochs = f"{self.config.epochs} epoch" + ("s" if self.config.epochs > 1 else "")
                raise DigitnetError(f"{self.run_dir} has finished its {epochs}; to train it further, "
                                    "resume with more --epochs")
            self.reporter.resume(self.position.epoch, self.position.step, self.steps)
        elif setup.ctx.is_main:
            atomic.make_folder(self.run_dir)
            runs.write_config(self.run_dir, self.config, dataset_sha256=ds.sha256,
                              parameters=count_parameters(learner.model),
                              world_size=setup.ctx.world_size, precision=setup.precision,
                              device=setup.device.type, threads=setup.threads,
                              channels_last=setup.channels_last)
        learner.train_model = learner.model
        if setup.ctx.distributed:  # after loading: DDP broadcasts rank 0's weights when it starts
            learner.train_model = nn.parallel.DistributedDataParallel(
                learner.model, device_ids=[setup.device.index] if setup.device.type == "cuda" else None)

    def open_board(self, classes: tuple[str, ...]) -> None:
        """The TensorBoard log when ``config.tensorboard`` asks for one, on process 0; a new run
        starts it with the graph and sample images."""
        if not (self.config.tensorboard and self.setup.ctx.is_main):
            return
        from digitnet.training.tensorboard import Board  # imports tensorboard: only when asked for

        at = self.position
        fresh = at.epoch == 0 and at.step == 0
        purge_step = None if fresh else at.epoch * self.steps + at.step
        self.board = Board(self.run_dir, classes, purge_step=purge_step)
        if fresh:
            self.board.start(self.learner.model, self.split.x_train, self.split.y_train)

    def train(self) -> None:
        """Epochs until the planned end or the target accuracy; Interrupted on a stop request.
        The run's position changes here only (and where ``start`` resumes it)."""
        at, split = self.position, self.split
        while at.epoch < self.config.epochs:
            steps, seconds = self.train_steps()
            at.step, at.seconds = at.step + steps, at.seconds + seconds
            # A stop during the steps, or during evaluation: a checkpoint at the last step
            # taken (a finished epoch resumes with its evaluation).
            measured = None if self.stop.requested() else self.evaluate(split.x_eval, split.y_eval)
            if measured is None:
                self.save(at.epoch, at.step)
                raise Interrupted(self.run_dir, at.epoch, at.step)
            at.evaluation = measured  # the last epoch's: finish may reuse it
            record = self.epoch_record(measured)
            at.history["epochs"].append(record)
            self.reporter.end_epoch(at.epoch, record)
            if self.board is not None:
                self.board.end_epoch((at.epoch + 1) * self.steps, record,
                                     self.learner.optimizer.param_groups[0]["lr"],
                                     self.learner.final, split.x_eval, split.y_eval, split.eval_name)
            at.epoch, at.step, at.tally = at.epoch + 1, 0, EpochTally()
            self.save(at.epoch, 0)
            if (self.config.target_accuracy and split.eval_name == "val"
                    and record["val_accuracy"] >= self.config.target_accuracy):
                break

    def train_steps(self) -> tuple[int, float]:
        """The rest of the epoch in progress, from ``position.step`` to its end (or a stop
        request); the steps taken and the seconds they took."""
        config, steps = self.config, self.steps
        epoch, first = self.position.epoch, self.position.step
        self.reporter.start_epoch(epoch, config.epochs, steps, first)
        started = time.perf_counter()
        result = train_one_epoch(
            self.learner.train_model, self.learner.optimizer, self.split.x_train,
            self.split.y_train, order=epoch_order(len(self.split.x_train), config.seed, epoch),
            batch_size=config.batch_size, start_step=first,
            lr_at=lambda s: schedules.learning_rate(config, epoch * steps + s, steps * config.epochs),
            autocast=self.setup.autocast, label_smoothing=config.label_smoothing,
            rank=self.setup.ctx.rank, world_size=self.setup.ctx.world_size,
            after_step=self.step_hooks(), transform=for_run(config),
        )
        return result.steps, time.perf_counter() - started

    def step_hooks(self) -> StepHooks:
        """What runs after each step of the epoch in progress."""
        learner, at, first = self.learner, self.position, self.position.epoch * self.steps
        hooks = []
        if learner.ema is not None:
            hooks.append(EmaHook(learner.ema, learner.model))
        hooks.append(TraceHook(at.history["steps"], at.tally, first, self.setup.ctx, self.setup.device))
        if self.board is not None:  # after the trace: it logs the trace's points
            hooks.append(TensorBoardHook(self.board, at.history["steps"], learner.optimizer,
                                         first + at.step))
        hooks.append(ProgressHook(self.reporter, at.tally.carried))
        if self.config.checkpoint_every:
            hooks.append(CheckpointHook(self.config.checkpoint_every, partial(self.save, at.epoch)))
        return StepHooks(at.tally, hooks, self.stop)

    def epoch_record(self, measured: Evaluation) -> dict[str, Any]:
        """The epoch's line in the history: training loss and accuracy over all processes (a
        collective), the evaluation, and the training time so far."""
        loss_sum, correct, images = self.position.tally.total(self.setup.ctx, self.setup.device)
        name = self.split.eval_name
        return {
            "epoch": self.position.epoch + 1,
            "train_loss": loss_sum / images if images else None,
            "train_accuracy": correct / images if images else None,
            f"{name}_loss": measured.loss,
            f"{name}_accuracy": measured.accuracy,
            "seconds": self.position.seconds,
        }

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> Evaluation | None:
        """The final model in fp32 on this process's share of (x, y), summed over all processes;
        None if a stop was requested meanwhile. It is asked between chunks, so a stop waits a
        second at most."""
        ctx, config, model = self.setup.ctx, self.config, self.learner.final
        share = -(-len(x) // ctx.world_size)  # the largest share: every process asks equally often
        x, y = x[ctx.rank :: ctx.world_size], y[ctx.rank :: ctx.world_size]
        chunk = 4 * config.eval_batch_size
        sums = torch.zeros(1 + config.num_classes ** 2, dtype=torch.float64, device=x.device)
        for i in range(0, max(share, 1), chunk):
            if self.stop.requested():
                return None
            if i < len(x):
                sums += evaluate_sums(model, x[i : i + chunk], y[i : i + chunk], config.eval_batch_size)
        return from_sums(distributed.all_reduce_sum(sums, ctx))

    def save(self, epoch: int, step: int) -> None:
        """A checkpoint at ``step`` of ``epoch``. Collective: every process passes here at the
        same step; process 0 writes."""
        setup, learner, at = self.setup, self.learner, self.position
        sums = at.tally.total(setup.ctx, setup.device) if step else [0.0] * 3
        states = distributed.all_gather_object(seeding.rng_state(setup.device), setup.ctx)
        if not setup.ctx.is_main:
            return
        checkpoints.save_checkpoint(self.run_dir, checkpoints.Checkpoint(
            epoch=epoch, step=step, model=learner.model.state_dict(),
            optimizer=learner.optimizer.state_dict(),
            ema=learner.ema.state_dict() if learner.ema else {},
            rng={f"{k}.{rank}": v for rank, state in enumerate(states) for k, v in state.items()},
            history=at.history, train_seconds=at.seconds,
            world_size=setup.ctx.world_size, epoch_sums=sums,
            trace_from=at.tally.trace_from if step else [0.0] * 3,
        ), self.config)

    def finish(self, classes: tuple[str, ...]) -> dict[str, Any]:
        """Calibrate on the validation split (if any), test the final model (in fp32, as
        ``digitnet evaluate`` does), save it and the metrics."""
        split, final = self.split, self.learner.final
        calibrated = (calibrate(final, split.x_eval, split.y_eval, self.config)
                      if split.eval_name == "val" else None)
        test = self.position.evaluation  # the last epoch was measured on the test set: the same
        if split.eval_name == "val" or test is None:
            test = self.evaluate(split.x_test, split.y_test)
        if test is None:  # the checkpoint after the last epoch is already saved
            raise Interrupted(self.run_dir, self.position.epoch, 0)
        metrics = self.metrics(test, calibrated, classes)
        if self.setup.ctx.is_main:
            runs.save_model(self.run_dir, final, self.config)
            runs.write_metrics(self.run_dir, metrics)
        return metrics

    def metrics(self, test: Evaluation, calibrated: dict[str, Any] | None,
                classes: tuple[str, ...]) -> dict[str, Any]:
        """metrics.json's record of the run."""
        config, setup, at = self.config, self.setup, self.position
        return {
            "run_dir": str(self.run_dir),
            "test_accuracy": test.accuracy,
            "test_loss": test.loss,
            "train_seconds": at.seconds,
            "epochs": config.epochs,
            "epochs_run": len(at.history["epochs"]),
            "batch_size": config.batch_size,
            "train_images": len(self.split.x_train),
            "precision": setup.precision,
            "world_size": setup.ctx.world_size,
            "device": setup.device.type,
            "threads": setup.threads,
            "per_class_accuracy": test.to_dict(config.class_names(classes))["per_class_accuracy"],
            "calibration": calibrated,
            "confusion": test.confusion.tolist(),
            "history": at.history,
        }


def fit(config: TrainConfig, run_dir: Path | None = None, *,
        data_dir: str | Path | None = None, dataset: Dataset | None = None,
        resume: bool = False, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` (resuming its checkpoint if ``resume``); return metrics.

    Without ``run_dir`` a new ``runs/<timestamp>-<dataset>`` is made (named by process 0).
    The returned metrics carry the run directory as ``run_dir``.
    """
    if config.tensorboard:  # say what is missing before anything is trained or written
        from digitnet.training.tensorboard import summary_writer

        summary_writer()
    setup = set_up(config)
    # Only process 0 shows progress; the others train silently.
    reporter = (reporter or SilentReporter()) if setup.ctx.is_main else SilentReporter()
    if run_dir is None:
        run_dir = Path(distributed.broadcast_object(str(runs.new_run_dir(config.dataset)), setup.ctx))
    # a new run never replaces one; judged by process 0 alone, before it writes its config.json,
    # which the others must not see
    elif not resume and distributed.broadcast_object(runs.holds_run(run_dir), setup.ctx):
        raise runs.taken(run_dir)
    ds = dataset or load(config.dataset, data_dir)
    split = make_split(ds, config, setup.device, data_dir)
    check_shards(len(split.x_train), config.batch_size, setup.ctx.world_size)
    trainer = Trainer(run_dir, config, setup, build_learner(config, setup), split, reporter,
                      StopRequest(setup.ctx, setup.device))
    trainer.start(ds, resumed=resume)
    trainer.open_board(config.class_names(ds.classes))
    try:
        with trainer.stop.listening():
            trainer.train()
            return trainer.finish(ds.classes)
    finally:
        if trainer.board is not None:
            trainer.board.close()
