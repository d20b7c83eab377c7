"""Training the line reader (``digitnet train-lines``): a ``LineNet`` learns with CTC loss to
read synthetic lines (``training.synthetic_lines``) composed from MNIST training digits; the last
``validation`` training digits are held out and composed into validation lines, on which the
temperature and the verdict's ``close`` ratio are chosen and the figures in metrics.json are
measured. MNIST test digits are used once everything is chosen and saved: the saved reader reads
numbers composed from them (``training.number_figures``), recorded under ``test`` in
metrics.json; they never feed back into training.

Writes into the output directory, atomically: ``line-reader.safetensors`` (weights; the
architecture, ``close`` and this config in its metadata) and ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from digitnet import atomic, runs
from digitnet.datasets import load
from digitnet.errors import DigitnetError
from digitnet.models import LineNet, count_parameters
from digitnet.runs import calibration
from digitnet.runs.line_reading import FORMAT, WEIGHTS_FILE, LineReader, decode
from digitnet.threads import torch_threads
from digitnet.training import devices, number_figures, schedules, synthetic_lines
from digitnet.training.calibrate import binned_gap, choose_close, fold_temperature, search_temperature

Batch = tuple[np.ndarray, list[np.ndarray], list[int]]  # lines, their labels, their widths


@dataclass(frozen=True)
class LineConfig:
    """How the line reader is trained; the defaults made the reader shipped in the package
    (2831 s in fp32 on two threads of a 2-core AMD EPYC with AVX2 only, 90-100 s an epoch;
    93.8% of the validation lines read exactly, 98.87% of their digits: its metrics.json)."""

    epochs: int = 30  # an epoch writes every training digit once, in lines of 1-12 digits
    batch_size: int = 64  # lines per step
    lr: float = 3e-3  # AdamW's peak rate on a one-cycle schedule
    weight_decay: float = 0.01
    warmup: float = 0.15  # the share of steps spent warming up
    ema: float = 0.998  # decay of the moving average of the weights that is measured and saved
    validation: int = 5_000  # the last N training digits: validation lines, never trained on
    limit: int = 0  # train on the first N training digits only; 0 = all the others
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 = one per core
    precision: str = "auto"  # bf16 where the CPU computes it natively, else fp32
    test_numbers: int = 900  # MNIST test numbers read for metrics.json's test figures; 0 = none
    width: tuple[int, int, int, int] = (32, 64, 96, 96)  # LineNet's convolution widths
    hidden: int = 96  # LineNet's LSTM units per direction
    frame: int = 2  # input columns per output column (2 or 4): 2 separates narrow touching digits
    # Shares of the training lines printed in a typeface rather than handwritten, and with ink
    # of two levels (a drawing canvas, a scanner's threshold, a screenshot). The marks it learns
    # to read as no digit include typeset letters with sharp edges, while every digit it saw had
    # MNIST's soft ones: a reader trained without these read most numbers typed on white as no
    # number (6.7% exact; one of them, blurred by 1.5 px, read right).
    typeset: float = 0.08
    crisp: float = 0.2

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "validation"):
            if getattr(self, name) < 1:
                raise DigitnetError(f"--{name.replace('_', '-')} must be at least 1, "
                                    f"got {getattr(self, name)}")
        for name in ("limit", "test_numbers"):
            if getattr(self, name) < 0:
                raise DigitnetError(f"--{name.replace('_', '-')} must be 0 or positive, "
                                    f"got {getattr(self, name)}")
        if self.lr <= 0:
            raise DigitnetError(f"--lr must be positive, got {self.lr}")
        if not 0 <= self.ema < 1:
            raise DigitnetError(f"--ema must be in [0, 1), got {self.ema}")
        for name in ("typeset", "crisp"):
            if not 0 <= getattr(self, name) < 1:
                raise DigitnetError(f"--{name} must be in [0, 1), got {getattr(self, name)}")
        if self.frame not in LineNet.FRAMES:
            raise DigitnetError(f"--frame must be {' or '.join(map(str, LineNet.FRAMES))}, got {self.frame}")

    def model_args(self) -> dict[str, Any]:
        return {"width": list(self.width), "hidden": self.hidden, "frame": self.frame}


def ctc_loss(logits: torch.Tensor, labels: list[np.ndarray], frames: list[int]) -> torch.Tensor:
    """Mean CTC loss per digit of (N, T, 11) logits against each line's digit labels; line i
    fills its first ``frames[i]`` columns (the rest is padding)."""
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, N, 11), as CTC wants
    targets = torch.from_numpy(np.concatenate(labels).astype(np.int64))
    return F.ctc_loss(log_probs, targets, torch.tensor(frames), torch.tensor([len(y) for y in labels]),
                      blank=LineNet.BLANK, zero_infinity=True)


def as_input(lines_u8: np.ndarray) -> torch.Tensor:
    """uint8 (N, 32, W) lines -> float32 (N, 1, 32, W) in [0, 1], channels-last for oneDNN."""
    x = torch.from_numpy(lines_u8.astype(np.float32) / 255.0)[:, None]
    return x.contiguous(memory_format=torch.channels_last)


def edit_distance(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@torch.inference_mode()
def validation_logits(model: nn.Module, batches: list[Batch]) -> list[tuple[torch.Tensor, np.ndarray]]:
    """(fp32 logits (T, 11) of the line's own columns, labels) for every validation line."""
    model.eval()
    out = []
    for x, labels, widths in batches:
        logits = model(as_input(x)).float()  # (N, T, 11)
        out.extend((logits[i, : w // model.frame], y)
                   for i, (y, w) in enumerate(zip(labels, widths, strict=True)))
    return out


def line_figures(outputs: list[tuple[torch.Tensor, np.ndarray]], close: float) -> dict[str, float]:
    """Exact lines, per-digit accuracy (1 - edit distance / length), and how honest the whole
    number's probability is (expected calibration error of "the line is read exactly")."""
    exact, per_digit, confidence = [], [], []
    for logits, y in outputs:
        digits, probability = decode(torch.softmax(logits, -1).numpy(), close)
        text = [d.digit for d in digits]
        exact.append(text == list(y))
        per_digit.append(max(0.0, 1 - edit_distance(text, list(y)) / max(1, len(y))))
        confidence.append(probability)
    right = torch.tensor(exact, dtype=torch.float)
    return {"exact": float(right.mean()), "per_digit": float(np.mean(per_digit)),
            "number_ece": binned_gap(torch.tensor(confidence), right)}


def calibrate_lines(model: LineNet, outputs: list[tuple[torch.Tensor, np.ndarray]]) -> tuple[float, float]:
    """Fit the temperature on the validation lines' CTC loss and fold it into ``model``; choose
    ``close`` on the digits of lines read with the right number of digits. (T, close).

    Not ``calibrate.fit_verdict``, for real differences: a line's probability is its whole
    CTC path's, so the temperature is fitted on whole lines, and a line has no "not a digit"
    class, so there is no rejection threshold to choose."""
    frames = [len(logits) for logits, _ in outputs]
    padded = nn.utils.rnn.pad_sequence([logits for logits, _ in outputs], batch_first=True)  # (N, T, 11)
    labels = [y for _, y in outputs]

    def nll(t: float) -> float:
        return float(ctc_loss(padded / t, labels, frames))

    temperature = search_temperature(nll)
    fold_temperature(model, temperature)
    at_peaks, truth = [], []
    for logits, y in outputs:
        probs = torch.softmax(logits / temperature, -1)
        digits, _ = decode(probs.numpy(), close=1.0)
        if len(digits) == len(y):
            at_peaks.extend(probs[d.frame] for d in digits)
            truth.extend(int(v) for v in y)
    if not at_peaks:  # nothing read right yet (a tiny run): the digit reader's default
        return temperature, calibration.Verdict().close
    close = choose_close(torch.stack(at_peaks), torch.tensor(truth),
                         calibration.Verdict(temperature, reject=1.0))
    return temperature, close


def save(out: Path, model: LineNet, config: LineConfig, close: float, temperature: float) -> None:
    metadata = {"format": FORMAT, "model_args": json.dumps(config.model_args()), "close": str(close),
                "temperature": str(temperature), "config": json.dumps(dataclasses.asdict(config))}
    atomic.write_bytes(out / WEIGHTS_FILE, runs.safetensors_bytes(runs.state_for_saving(model), metadata))


def validation_lines(ds, config: LineConfig) -> list[Batch]:
    """The same validation lines every epoch, from a stream of their own: the last
    ``validation`` training digits written plainly, as MNIST's writers wrote them. The "a or b?"
    ratio is chosen on them, as the digit reader's is on its plain validation digits: on digits
    redrawn as other writers write, no ratio makes 99.5% of the plain answers right."""
    split = len(ds.x_train) - config.validation
    val_rng = np.random.default_rng(config.seed + 1)
    groups = synthetic_lines.epoch_lines(config.validation, val_rng)
    return list(synthetic_lines.line_batches(ds.x_train[split:], ds.y_train[split:], groups, 256,
                                             val_rng, style=synthetic_lines.PLAIN))


def refit(out: Path, data_dir: str | None = None) -> dict[str, Any]:
    """Fit a trained line reader's temperature and "a or b?" ratio again on its validation lines
    (rebuilt from the config in its metadata) with this version's rule, for a reader trained
    before the rule changed; the new temperature folds in on top of the old. Saves the weights
    and updates metrics.json, atomically; returns the new figures."""
    reader = LineReader.load(out)
    _, metadata = runs.read_safetensors(out / WEIGHTS_FILE, "line reader")
    # the frame the weights read with: a file written before frames were recorded has none
    # in its config, and its reader reads 4-pixel columns, not LineConfig's default; one
    # written before printed lines were drawn learnt from none
    config = LineConfig(**{"typeset": 0.0, "crisp": 0.0,
                           **{k: tuple(v) if k == "width" else v
                              for k, v in json.loads(metadata["config"]).items()},
                           "frame": reader.frame})
    model = reader.model
    ds = load("mnist", data_dir)
    held_out = validation_lines(ds, config)
    temperature, close = calibrate_lines(model, validation_logits(model, held_out))
    temperature *= float(metadata["temperature"])
    final = line_figures(validation_logits(model, held_out), close)
    save(out, model, config, close, temperature)
    figures = {"temperature": temperature, "close": close, **{f"val_{k}": v for k, v in final.items()}}
    if config.test_numbers:  # measured again, as training measures the reader it saves
        figures["test"] = number_figures.test_figures(LineReader.load(out), ds.x_test, ds.y_test,
                                                      config.test_numbers)
    metrics_path = out / "metrics.json"
    if metrics_path.is_file():
        atomic.write_json(metrics_path, {**json.loads(metrics_path.read_text()), **figures})
    return figures


def fit_lines(config: LineConfig, out: Path, *, data_dir: str | None = None,
              report: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, calibrate and save a line reader into ``out``, then measure the saved reader on
    numbers composed from MNIST test digits; writes and returns the metrics."""
    with torch_threads(config.threads or torch.get_num_threads()):
        metrics = train_line_reader(config, out, data_dir, report)
        if config.test_numbers:
            ds = load("mnist", data_dir)
            metrics["test"] = number_figures.test_figures(LineReader.load(out), ds.x_test, ds.y_test,
                                                          config.test_numbers)
    atomic.write_json(out / "metrics.json", metrics)
    return metrics


def train_line_reader(config: LineConfig, out: Path, data_dir: str | None,
                      report: Callable[[str], None]) -> dict[str, Any]:
    """``fit_lines`` on the threads it set: the epochs, then calibration, saving and figures."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    precision = devices.resolve_precision(config.precision, torch.device("cpu"))
    ds = load("mnist", data_dir)
    x, y = training_digits(ds, config)
    held_out = validation_lines(ds, config)
    thinned = synthetic_lines.skeletons(x)  # each digit's skeleton, for redrawing it every epoch
    model = LineNet(config.width, config.hidden, config.frame).to(memory_format=torch.channels_last)
    # the average of the last few hundred steps' weights: steadier than the last step's
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # drawn first: the schedule needs the step count
    epochs = [synthetic_lines.epoch_lines(len(x), rng) for _ in range(config.epochs)]
    steps = sum(-(-len(groups) // config.batch_size) for groups in epochs)
    schedule = schedules.line_one_cycle(optimizer, config.lr, steps, config.warmup)
    atomic.make_folder(out)
    history, started = [], time.perf_counter()
    for epoch, groups in enumerate(epochs):
        batches = synthetic_lines.line_batches(x, y, groups, config.batch_size, rng, thinned=thinned,
                                               typeset=config.typeset, crisp=config.crisp)
        loss = train_line_epoch(model, average, optimizer, schedule, batches, precision)
        history.append({"epoch": epoch + 1, "train_loss": loss,
                        **{f"val_{k}": v for k, v in line_figures(
                            validation_logits(average.module, held_out), 1.0).items()},
                        "seconds": round(time.perf_counter() - started, 1)})
        report(epoch_line(history[-1], config.epochs))
    train_seconds = time.perf_counter() - started
    model = average.module
    temperature, close = calibrate_lines(model, validation_logits(model, held_out))
    final = line_figures(validation_logits(model, held_out), close)
    save(out, model, config, close, temperature)
    return {"config": dataclasses.asdict(config), "parameters": count_parameters(model),
            "validation_lines": sum(len(labels) for _, labels, _ in held_out),
            "temperature": temperature, "close": close, **{f"val_{k}": v for k, v in final.items()},
            "train_seconds": round(train_seconds, 1), "precision": precision,
            "threads": torch.get_num_threads(), "history": history, "environment": runs.environment()}


def training_digits(ds, config: LineConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training digits lines are composed from: the first ``limit`` (or all) of those
    before the validation digits; uint8 (N, 28, 28) and (N,) labels."""
    split = len(ds.x_train) - config.validation
    if split < 1000:
        raise DigitnetError(f"--validation {config.validation} leaves too few training digits")
    n = min(split, config.limit or split)
    return ds.x_train[:n], ds.y_train[:n]


def train_line_epoch(model: LineNet, average: AveragedModel, optimizer: torch.optim.Optimizer,
                     schedule: torch.optim.lr_scheduler.LRScheduler, batches: Iterator[Batch],
                     precision: str) -> float:
    """One step per batch of lines (CTC loss, gradients clipped to norm 5, the schedule and the
    weight average after each); the epoch's mean loss."""
    model.train()
    losses = []
    for batch, labels, widths in batches:
        with devices.autocast(precision, torch.device("cpu")):
            logits = model(as_input(batch))  # (N, T, 11)
        loss = ctc_loss(logits, labels, [w // model.frame for w in widths])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        schedule.step()
        average.update_parameters(model)
        losses.append(loss.item())
    return float(np.mean(losses))


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    return (f"epoch {record['epoch']}/{epochs}  loss {record['train_loss']:.4f}  "
            f"validation lines exact {record['val_exact']:.4f}  per digit {record['val_per_digit']:.4f}"
            f"  {record['seconds']:.0f} s")
