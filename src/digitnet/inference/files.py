"""Predict the digit in each of many image files: decode and preprocess every file, then one
batched call to the model. A file that cannot be used becomes a ``FileError`` and the others
go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from digitnet import atomic
from digitnet.errors import DigitnetError
from digitnet.runs.calibration import Answer
from digitnet.vision import imaging
from digitnet.vision.layout import count_digits


class Model(Protocol):
    def probabilities(self, images: np.ndarray) -> np.ndarray: ...

    def answers(self, probabilities: np.ndarray) -> list[Answer]: ...


@dataclass
class Prediction:
    """One file's answer; ``image28`` is the uint8 (28, 28) picture the model saw; ``number``
    counts the digits side by side (over 1: a whole number, which ``read`` is for)."""

    path: str
    answer: Answer
    top_k: list[tuple[int, float]]
    image28: np.ndarray
    number: int = 0

    @property
    def digit(self) -> int:
        return self.answer.digit

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, **self.answer.to_dict(), "top_k": [[d, p] for d, p in self.top_k],
                **({"number_of_digits": self.number} if self.number > 1 else {})}


@dataclass
class FileError:
    """A file that could not be used: ``message`` is one line starting with the path."""

    path: str
    message: str
    kind: str


def with_path(path: str, error: Exception) -> str:
    """The error's message, starting with the path exactly once."""
    text = str(error)
    return text if text.startswith(f"{path}:") else f"{path}: {text}"


def prepare(path: str | Path) -> tuple[np.ndarray, int]:
    """One image file -> uint8 (28, 28) as the model sees it, and how many digits side by side
    it seems to hold when more than one (raises DigitnetError)."""
    digit = imaging.digit_from_bytes(imaging.read_file(path), str(path))
    return digit.image28, count_digits(digit.ink)


def top_classes(probabilities: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(10,) probabilities -> the k most likely (class, probability), most likely first."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(c), round(float(probabilities[c]), 6)) for c in order]


def debug_name(path: str, taken: set[str]) -> str:
    """``<stem>.png`` for the file, with ``-2``, ``-3``... when two inputs share a stem."""
    stem = Path(path).stem or "image"
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return name


def write_debug(debug_dir: Path, predictions: list[Prediction]) -> list[Path]:
    """Write each prediction's 28x28 image as a PNG in ``debug_dir`` (atomically)."""
    taken: set[str] = set()
    written = []
    for p in predictions:
        ok, png = cv2.imencode(".png", p.image28)
        if not ok:
            raise DigitnetError(f"could not encode the debug image for {p.path}")
        target = debug_dir / debug_name(p.path, taken)
        atomic.write_bytes(target, png.tobytes())
        written.append(target)
    return written


def predict_files(predictor: Model, paths: list[str | Path], top_k: int = 3,
                  debug_dir: Path | None = None) -> tuple[list[Prediction], list[FileError]]:
    """Predictions for the files that could be read (input order) and one error per other file.

    All images go through ``predictor.probabilities`` in a single batched call.
    """
    images, counts, good, errors = [], [], [], []
    for path in paths:
        try:
            image, count = prepare(path)
            images.append(image)
            counts.append(count)
            good.append(str(path))
        except DigitnetError as e:
            errors.append(FileError(str(path), with_path(str(path), e), getattr(e, "kind", "unreadable")))
    if not images:
        return [], errors
    batch = np.stack(images)  # (N, 28, 28) uint8
    probs = predictor.probabilities(batch)  # (N, classes)
    said = predictor.answers(probs)
    predictions = [Prediction(path, answer, top_classes(p, max(1, top_k)), image, count)
                   for path, image, p, answer, count in zip(good, images, probs, said, counts, strict=True)]
    if debug_dir is not None:
        write_debug(Path(debug_dir), predictions)
    return predictions, errors
