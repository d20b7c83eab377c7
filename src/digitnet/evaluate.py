"""Measuring a model: loss, accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from digitnet.preprocess import input_tensor


@dataclass
class Evaluation:
    loss: float  # mean cross-entropy
    accuracy: float  # fraction right, in [0, 1]
    confusion: np.ndarray  # (classes, classes) counts: row = true class, column = predicted

    @property
    def images(self) -> int:
        return int(self.confusion.sum())

    @property
    def per_class_accuracy(self) -> np.ndarray:
        totals = self.confusion.sum(axis=1)
        return np.diag(self.confusion) / np.maximum(totals, 1)

    def to_dict(self, classes: tuple[str, ...] | None = None) -> dict:
        names = classes or tuple(str(i) for i in range(len(self.confusion)))
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "images": self.images,
            "per_class_accuracy": dict(zip(names, self.per_class_accuracy.tolist(), strict=True)),
            "confusion": self.confusion.tolist(),
        }


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1000,
                   autocast: Callable[[], object] | None = None) -> torch.Tensor:
    """Logits (N, 10) for images (N, 1, 28, 28), in batches, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        out = []
        for i in range(0, len(x), batch_size):
            with autocast() if autocast else contextlib.nullcontext():
                out.append(model(x[i : i + batch_size]).float())
        return torch.cat(out) if out else torch.zeros(0, 10)
    finally:
        model.train(was_training)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, classes: int = 10) -> torch.Tensor:
    return torch.bincount(y_true * classes + y_pred, minlength=classes * classes).reshape(
        classes, classes
    )


def evaluate_sums(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
                  autocast: Callable[[], object] | None = None) -> torch.Tensor:
    """[loss sum, confusion counts...] as one float64 vector, so processes can add them up."""
    return sums_of(predict_logits(model, x, batch_size, autocast), y)


def sums_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``evaluate_sums`` of logits (N, classes) already computed, for labels (N,)."""
    loss_sum = F.cross_entropy(logits, y, reduction="sum").double().reshape(1)
    confusion = confusion_matrix(y, logits.argmax(1), logits.shape[1]).double().reshape(-1)
    return torch.cat([loss_sum, confusion])


def from_sums(sums: torch.Tensor) -> Evaluation:
    classes = int(round((len(sums) - 1) ** 0.5))
    confusion = sums[1:].reshape(classes, classes).round().long().cpu().numpy()
    images = max(int(confusion.sum()), 1)
    return Evaluation(
        loss=float(sums[0]) / images,
        accuracy=float(np.trace(confusion)) / images,
        confusion=confusion,
    )


def as_images(x) -> torch.Tensor:
    """Images as a tensor (N, 1, 28, 28): a tensor as it is, or numpy arrays as the tutorial
    makes them (uint8 (N, 28, 28), or ``scale``'s float32 channels-first or channels-last)."""
    if torch.is_tensor(x):
        return x
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] == 1:  # (N, 1, 28, 28): channels first
        x = x[:, 0]
    elif x.ndim == 4 and x.shape[-1] == 1:  # (N, 28, 28, 1): channels last
        x = x[..., 0]
    return input_tensor(x)


def as_labels(y) -> torch.Tensor:
    """Class indices (N,) from indices or one-hot rows (N, classes), numpy or torch."""
    y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)
    return (y.argmax(1) if y.ndim == 2 else y).long()


def evaluate(model: nn.Module, x, y, batch_size: int = 1000,
             autocast: Callable[[], object] | None = None) -> Evaluation:
    """Loss, accuracy and confusion matrix of ``model`` on images ``x`` and labels ``y``
    (tensors, or numpy arrays as ``load_data``, ``scale`` and ``to_categorical`` return them)."""
    return from_sums(evaluate_sums(model, as_images(x), as_labels(y), batch_size, autocast))
