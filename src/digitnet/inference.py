"""Using a trained model: class probabilities for batches of 28x28 images.

``Predictor`` is what ``predict``, ``read`` and the web server call; it hides which runtime
executes the network (``backend``), so all of them gain from a faster one at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitnet import runs
from digitnet.config import TrainConfig
from digitnet.errors import DigitnetError
from digitnet.models import probabilities

BACKENDS = ("torch",)


def as_batch(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) or (28, 28), or float in [0, 1] -> float32 (N, 1, 28, 28)."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DigitnetError(f"expected 28x28 images, got an array of shape {images.shape}")
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x /= 255.0
    return x[:, None]


class Predictor:
    """Probabilities (N, 10) for MNIST-style images, from a run directory's model."""

    def __init__(self, model: nn.Module, config: TrainConfig, run_dir: Path | None = None,
                 backend: str = "torch", batch_size: int = 1000) -> None:
        if backend not in BACKENDS:
            raise DigitnetError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        self.model = model.eval()
        self.config = config
        self.run_dir = run_dir
        self.backend = backend
        self.batch_size = batch_size

    @classmethod
    def from_run(cls, run_dir: str | Path, backend: str = "torch") -> Predictor:
        run_dir = runs.check_run_dir(run_dir)
        model, config = runs.load_model(run_dir)
        return cls(model, config, run_dir, backend)

    @property
    def classes(self) -> tuple[str, ...]:
        from digitnet.datasets import get_spec

        return get_spec(self.config.dataset).classes

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float32 (N, 10) class probabilities for images as ``as_batch`` accepts them."""
        x = torch.from_numpy(as_batch(images))
        out = [probabilities(self.model(x[i : i + self.batch_size]))
               for i in range(0, len(x), self.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, 10), np.float32)
