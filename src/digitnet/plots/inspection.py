"""What a trained model does with images: its answers, its worst mistakes, its filters and the
output of every layer. These functions gather numbers; ``digitnet.plots.figures`` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from digitnet.errors import DigitnetError
from digitnet.preprocess import input_tensor


@dataclass(frozen=True)
class Predictions:
    """A model's answers for some labelled images."""

    images: np.ndarray  # uint8 (N, 28, 28)
    labels: np.ndarray  # int (N,) the true classes
    probabilities: np.ndarray  # float32 (N, classes)

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The probability of the predicted class, (N,)."""
        return self.probabilities.max(axis=1)

    @property
    def right(self) -> np.ndarray:
        return self.predicted == self.labels

    def take(self, index: np.ndarray) -> Predictions:
        return Predictions(self.images[index], self.labels[index], self.probabilities[index])

    def confusion(self) -> np.ndarray:
        """(classes, classes) counts: row = true class, column = predicted class."""
        k = self.probabilities.shape[1]
        return np.bincount(self.labels * k + self.predicted, minlength=k * k).reshape(k, k)


class Reader(Protocol):
    """What ``predict`` needs of a model (``inference.predictor.Predictor`` is one)."""

    def probabilities(self, images: np.ndarray) -> np.ndarray: ...


def predict(predictor: Reader, images: np.ndarray, labels: np.ndarray) -> Predictions:
    """Run ``predictor`` on uint8 images (N, 28, 28) with their true labels (N,)."""
    return Predictions(images, np.asarray(labels, dtype=np.int64), predictor.probabilities(images))


def sample(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct indices out of ``n_total`` (all of them if fewer), reproducible by ``seed``."""
    return np.random.default_rng(seed).choice(n_total, size=min(n, n_total), replace=False)


def most_confident_mistakes(predictions: Predictions, n: int) -> Predictions:
    """Up to ``n`` wrong answers, the most confident first."""
    wrong = np.flatnonzero(~predictions.right)
    order = wrong[np.argsort(-predictions.confidence[wrong], kind="stable")]
    return predictions.take(order[:n])


def first_conv_filters(model: nn.Module) -> tuple[str, np.ndarray]:
    """The name and kernels of the model's first Conv2d: (out channels x in channels, kh, kw)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            weight = module.weight.detach().float().cpu().numpy()  # (C_out, C_in, kh, kw)
            return name, weight.reshape(-1, *weight.shape[2:])
    raise DigitnetError(f"{type(model).__name__} has no convolution layer whose filters could be shown")


@dataclass(frozen=True)
class LayerOutput:
    name: str  # as in model.named_modules(), e.g. "conv1"
    kind: str  # the layer's class name, e.g. "Conv2d"
    values: np.ndarray  # one image's output without the batch axis: (C, H, W) or (F,)


@torch.inference_mode()
def layer_outputs(model: nn.Module, image: np.ndarray) -> list[LayerOutput]:
    """The output of each leaf layer for one uint8 image (28, 28), in the order they run.

    Layers that hand their input on unchanged (dropout in eval mode, flatten, identity) are left
    out: their picture would repeat the previous one.
    """
    seen: list[LayerOutput] = []

    def hook(module, inputs, output, name):
        if inputs and torch.equal(inputs[0].reshape(-1), output.reshape(-1)):
            return
        seen.append(LayerOutput(name, type(module).__name__, output[0].float().cpu().numpy()))

    hooks = [module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name))
             for name, module in model.named_modules() if name and not list(module.children())]
    was_training = model.training
    model.eval()
    try:
        model(input_tensor(image[None]))  # (1, 1, 28, 28)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return seen
