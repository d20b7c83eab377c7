"""Digit images as people send them: MNIST test digits as dark ink on white paper, PNG-encoded."""

from __future__ import annotations

import cv2
import numpy as np


def on_paper(digit28: np.ndarray, size: int = 120, canvas: tuple[int, int] = (300, 300),
             at: tuple[int, int] = (20, 30)) -> np.ndarray:
    """A white-on-black MNIST digit drawn dark-on-white, ``size`` px tall at ``at`` (x, y)."""
    paper = np.full(canvas, 255, np.uint8)  # (H, W)
    x, y = at
    paper[y : y + size, x : x + size] = ink(digit28, size)
    return paper


def ink(digit28: np.ndarray, size: int) -> np.ndarray:
    """uint8 (size, size): the digit scaled up, dark on white."""
    return 255 - cv2.resize(digit28, (size, size), interpolation=cv2.INTER_CUBIC)


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def number_on_paper(digits28: list[np.ndarray], size: int = 80, gap: int = 30) -> np.ndarray:
    """Several digits side by side on white paper, ``gap`` px between their 28x28 fields
    (negative: the fields overlap, and digits that reach their field's edge touch)."""
    margin = 30
    width = 2 * margin + len(digits28) * size + (len(digits28) - 1) * gap
    paper = np.full((size + 2 * margin, width), 255, np.uint8)
    for i, d in enumerate(digits28):
        x = margin + i * (size + gap)
        field = paper[margin : margin + size, x : x + size]
        np.minimum(field, ink(d, size), out=field)  # dark ink over what is already written
    return paper


class UniformPredictor:
    """Ten equal probabilities for any batch: a model that costs nothing, so tests of the image
    path and the HTTP layer run in milliseconds and need no trained run."""

    backend = "uniform"

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.full((len(images), 10), 0.1, np.float32)


def uniform_app(**settings):
    """The real application serving ``UniformPredictor`` (and the package's line reader, which
    is small and quick)."""
    from pathlib import Path

    from digitnet.inference.lines import LineReader
    from digitnet.web import service
    from digitnet.web.app import Settings, create_app
    from digitnet.web.schemas import ModelInfo

    info = ModelInfo(run="uniform", dataset="mnist", classes=[str(d) for d in range(10)],
                     architecture="uniform", parameters=None, test_accuracy=None, precision=None,
                     backend="uniform", line_reader="the package's")
    loaded = service.LoadedModel(UniformPredictor(), info, LineReader.load())  # type: ignore[arg-type]
    return create_app(Settings(run_dir=Path("uniform"), **settings), loaded=loaded)
