"""TensorBoard logs of a run (``digitnet train --tensorboard``), in ``RUN_DIR/tensorboard``:

- scalars ``step/*``: at every point of the loss trace (``hooks.TRACE_EVERY`` steps) the mean
  loss and accuracy since the previous point, the learning rate and the mean seconds per step;
- scalars ``epoch/*``: each epoch's training and evaluation loss and accuracy, its learning
  rate and the training seconds so far;
- the model's graph, and a labelled grid of training images, when the run starts;
- each epoch, the most confident mistakes among the first ``MISTAKES_FROM`` evaluation images
  and a histogram of every parameter.

Every scalar, image and histogram is at the global step (images trained on), so all share one
x axis, and a resumed run drops what the interrupted one logged past its checkpoint. Only
process 0 writes. ``torch.utils.tensorboard`` (and with it tensorboard) is imported by
``summary_writer`` alone: a run without the option never loads it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from digitnet.errors import DigitnetError
from digitnet.evaluate import predict_logits
from digitnet.plots import figures
from digitnet.plots.inspection import Predictions, most_confident_mistakes

LOG_DIR = "tensorboard"  # inside the run directory
SAMPLES = 40  # training images shown at the start
MISTAKES_FROM = 2_000  # evaluation images searched for mistakes each epoch
MISTAKES = 30  # mistakes shown
DPI = 72  # the pictures are small: TensorBoard shows them at about their size


def summary_writer():
    """``SummaryWriter``, or one line saying how to install what it needs."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise DigitnetError("--tensorboard needs the tensorboard package: "
                            "pip install 'digitnet[tensorboard]' (or pip install tensorboard)") from e
    return SummaryWriter


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Network input (N, 1, 28, 28) in [0, 1] -> uint8 (N, 28, 28), as the pictures take it."""
    return (x[:, 0].float().cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)


def picture(fig) -> np.ndarray:
    """A figure as an RGB array (H, W, 3)."""
    png = figures.to_png(fig, dpi=DPI)
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class Board:
    """One run's TensorBoard writer and what it writes."""

    def __init__(self, run_dir: Path, classes: tuple[str, ...], purge_step: int | None = None) -> None:
        self.log_dir = run_dir / LOG_DIR
        # purge_step: TensorBoard hides what an interrupted run wrote at or after the checkpoint
        self.writer = summary_writer()(str(self.log_dir), purge_step=purge_step)
        self.classes = classes

    def start(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """The graph (traced in eval mode on one image) and a grid of labelled images."""
        with warnings.catch_warnings():  # add_graph traces with torch.jit, which warns of itself
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.jit")
            self.writer.add_graph(model, x[:1])
        n = min(SAMPLES, len(x))
        fig = figures.samples(to_uint8(x[:n]), y[:n].cpu().numpy(), self.classes,
                              f"the first {n} training images")
        self.writer.add_image("images/training", picture(fig), 0, dataformats="HWC")

    def step(self, step: int, point: dict[str, float], lr: float, seconds_per_step: float) -> None:
        """One point of the loss trace, with the learning rate and the time per step."""
        self.writer.add_scalar("step/loss", point["loss"], step)
        self.writer.add_scalar("step/accuracy", point["accuracy"], step)
        self.writer.add_scalar("step/learning_rate", lr, step)
        self.writer.add_scalar("step/seconds_per_step", seconds_per_step, step)

    def end_epoch(self, step: int, record: dict[str, Any], lr: float, model: nn.Module,
                  x_eval: torch.Tensor, y_eval: torch.Tensor, eval_name: str) -> None:
        """The epoch's figures, its mistakes and the weights, at global ``step``."""
        for key, value in record.items():
            if key != "epoch" and value is not None:
                self.writer.add_scalar(f"epoch/{key}", value, step)
        self.writer.add_scalar("epoch/learning_rate", lr, step)
        self.writer.add_image(f"images/mistakes_{eval_name}", self.mistakes(model, x_eval, y_eval,
                                                                            eval_name, record["epoch"]),
                              step, dataformats="HWC")
        for name, param in model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), step)
        self.writer.flush()

    def mistakes(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eval_name: str,
                 epoch: int) -> np.ndarray:
        x, y = x[:MISTAKES_FROM], y[:MISTAKES_FROM]
        probs = torch.softmax(predict_logits(model, x), dim=1).cpu().numpy()  # (N, classes)
        found = Predictions(to_uint8(x), y.cpu().numpy(), probs)
        shown = most_confident_mistakes(found, MISTAKES)
        wrong = int((~found.right).sum())
        fig = figures.errors(shown, self.classes, f"epoch {epoch}: {wrong} mistakes in the first "
                                                  f"{len(y):,} {eval_name} images")
        return picture(fig)

    def close(self) -> None:
        self.writer.close()
