"""What the server does with an image, free of HTTP: bytes in, API results out.

The same preprocessing as ``digitnet predict`` (``digitnet.vision.imaging``) turns any photo or
drawing into the 28x28 white-on-black input; the PNG of that input goes back to the client
so a person can see what the model was actually given.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digitnet.errors import DigitnetError
from digitnet.inference.lines import LineReader
from digitnet.inference.predictor import Predictor
from digitnet.training import runs
from digitnet.vision import imaging
from digitnet.vision.layout import count_digits
from digitnet.vision.numbers import read_number
from digitnet.web.schemas import DigitOut, ModelInfo, Prediction, Reading


@dataclass
class LoadedModel:
    """A run's predictor and the line reader, with the facts /api/model reports, loaded once."""

    predictor: Predictor
    info: ModelInfo
    line_reader: LineReader


def load_model(run_dir: Path, backend: str, line_reader: Path | None = None) -> LoadedModel:
    """Load a run (and a line reader: ``line_reader``, else the package's) for serving; any
    problem is a DigitnetError, so a bad run stops the start."""
    predictor = Predictor.from_run(run_dir, backend=backend)
    reader = LineReader.load(line_reader)
    _, config_file = runs.read_config(run_dir)
    try:
        metrics = runs.read_metrics(run_dir)
    except DigitnetError:
        metrics = {}  # a model without metrics (e.g. copied by hand) still serves
    config = predictor.config
    info = ModelInfo(
        run=Path(run_dir).resolve().name,
        dataset=config.dataset,
        classes=list(predictor.classes),
        architecture=config.model,
        parameters=config_file.get("model", {}).get("parameters"),
        test_accuracy=metrics.get("test_accuracy"),
        precision=metrics.get("precision"),
        backend=predictor.backend,  # the runtime "auto" resolved to
        line_reader="the package's" if line_reader is None else str(line_reader),
    )
    return LoadedModel(predictor, info, reader)


def png_base64(image: np.ndarray) -> str:
    ok, png = cv2.imencode(".png", image)
    if not ok:  # cv2 cannot fail on a uint8 2-D array, but never return garbage
        raise DigitnetError("could not encode the preprocessed image as PNG")
    return base64.b64encode(png.tobytes()).decode("ascii")


def predict_image(data: bytes, source: str, predictor: Predictor) -> Prediction:
    """One digit: decode, preprocess to 28x28, classify."""
    with imaging.opencv_errors(source):
        image = imaging.decode(data, source, imaging.DIGIT_PHOTO_SIDE, gray=True)
        x, ink = imaging.digit_and_ink(image)  # (28, 28) uint8, (h, w) bool
    p = predictor.probabilities(x[None])  # (1, classes)
    (answer,) = predictor.answers(p)
    count = count_digits(ink)
    return Prediction(**answer.to_dict(), probabilities=[float(v) for v in p[0]],
                      number_of_digits=count if count > 1 else None, preprocessed=png_base64(x))


def read_image(data: bytes, source: str, reader: LineReader) -> Reading:
    """A number on one line, read whole."""
    with imaging.opencv_errors(source):
        reading = read_number(imaging.decode(data, source), reader)
    digits = [DigitOut(digit=d.digit, probability=d.probability, box=tuple(int(v) for v in d.box),
                       runner_up=d.runner_up, unsure=d.unsure, preprocessed=png_base64(d.image28))
              for d in reading.digits]
    return Reading(text=reading.text, verdict=reading.verdict, probability=reading.probability,
                   unsure=reading.unsure, digits=digits, preprocessed=png_base64(reading.line))
