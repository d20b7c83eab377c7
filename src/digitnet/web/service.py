"""What the server does with an image, free of HTTP: bytes in, API results out.

The same way in as ``digitnet predict`` and ``digitnet read`` (``imaging.digit_from_bytes``,
``numbers.number_from_bytes``) turns any photo or drawing into the 28x28 white-on-black input,
or a number's line; the PNG of that input goes back to the client so a person can see what the
model was actually given.

A correction is read again here, by the model served now: the answer, confidence, 28x28
images and model identity stored with it are the server's own, not what a client claims, and
the picture kept is the ink re-encoded (``corrections.pictures``), never the file as sent.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digitnet.corrections import pictures, store
from digitnet.errors import DigitnetError
from digitnet.inference import explain
from digitnet.inference.predictor import Predictor
from digitnet.runs.config import NOT_A_DIGIT, NOT_A_DIGIT_NAME
from digitnet.runs.line_reading import LineReader
from digitnet.runs.run import Run
from digitnet.vision import imaging
from digitnet.vision.layout import count_digits
from digitnet.vision.numbers import in_original, number_from_bytes
from digitnet.web import site
from digitnet.web.schemas import CorrectionFields, CorrectionOut, DigitOut, ModelInfo, Prediction, Reading


@dataclass(frozen=True)
class LoadedModel:
    """A run's predictor, the line reader and what reads on the device, with the facts
    /api/model reports; loaded at start or by a swap."""

    predictor: Predictor
    info: ModelInfo
    line_reader: LineReader
    on_device: site.OnDevice  # the files for reading in the browser, or why there are none
    run_dir: Path | None = None  # resolved


def load_model(run_dir: Path, backend: str, line_reader: Path | None = None) -> LoadedModel:
    """Load a run, each of its files read once (and a line reader: ``line_reader``, else the
    package's) for serving; any problem is a DigitnetError, so a bad run stops the start."""
    run = Run.open(run_dir)
    predictor = Predictor.from_run(run, backend=backend)
    reader = LineReader.load(line_reader)
    info = ModelInfo(
        **run.describe(),
        precision=run.metrics.get("precision"),
        backend=predictor.backend,  # the runtime "auto" resolved to
        line_reader="the package's" if line_reader is None else Path(line_reader).name,
        weights_sha256=run.weights_sha256,
    )
    loaded = LoadedModel(predictor, info, reader, site.on_device(run), run.path.resolve())
    warm(loaded)
    return loaded


def warm(model: LoadedModel) -> None:
    """Answer one drawn 1 and one line of three before the first client does: the first call
    of each path pays for lazy set-up (kernels chosen, buffers allocated, decoders loaded),
    which would otherwise land on a visitor."""
    paper = np.full((64, 160), 255, np.uint8)
    for x in (20, 70, 120):
        cv2.line(paper, (x, 12), (x + 4, 52), 0, 5)
    ok, png = cv2.imencode(".png", paper)
    digit = np.ascontiguousarray(paper[:, :48])
    ok_digit, png_digit = cv2.imencode(".png", digit)
    if ok and ok_digit:
        predict_image(png_digit.tobytes(), "warm-up", model.predictor)
        read_image(png.tobytes(), "warm-up", model.line_reader)


def png_base64(image: np.ndarray) -> str:
    ok, png = cv2.imencode(".png", image)
    if not ok:  # cv2 cannot fail on a uint8 2-D array, but never return garbage
        raise DigitnetError("could not encode the preprocessed image as PNG")
    return base64.b64encode(png.tobytes()).decode("ascii")


def predict_image(data: bytes, source: str, predictor: Predictor) -> Prediction:
    """One digit: decode, preprocess to 28x28, classify."""
    digit = imaging.digit_from_bytes(data, source)
    p = predictor.probabilities(digit.image28[None])  # (1, classes)
    (answer,) = predictor.answers(p)
    count = count_digits(digit.ink)
    return Prediction(**answer.to_dict(), probabilities=[float(v) for v in p[0]],
                      number_of_digits=count if count > 1 else None,
                      preprocessed=png_base64(digit.image28))


def explain_image(data: bytes, source: str, predictor: Predictor) -> dict:
    """What the network sees in one digit (the image prepared as ``predict_image`` prepares it):
    occlusion on the predictor's own runtime, the first layer's maps, as small integer arrays.
    Its cost is bounded: at most 169 blanked copies and 2 more in one batch, whatever is sent."""
    digit = imaging.digit_from_bytes(data, source)
    return explain.explain_with(predictor, digit.image28).to_dict()


def read_image(data: bytes, source: str, reader: LineReader) -> Reading:
    """A number on one line, read whole; boxes in the pixels of the image sent."""
    reading, _, factor = number_from_bytes(data, source, reader)
    reading = in_original(reading, factor)
    digits = [DigitOut(digit=d.digit, probability=d.probability, box=d.box,
                       runner_up=d.runner_up, unsure=d.unsure, preprocessed=png_base64(d.image28))
              for d in reading.digits]
    return Reading(text=reading.text, verdict=reading.verdict, probability=reading.probability,
                   unsure=reading.unsure, digits=digits, preprocessed=png_base64(reading.line))


NUMBER = re.compile(r"^[0-9]{1,40}$")
DIGIT_NAMES = tuple("0123456789")


def tidy_label(fields: CorrectionFields) -> str:
    """The label, tidied: one digit or "not a digit" for a digit, only digits for a number."""
    label = " ".join(fields.label.split()).lower()
    if fields.kind == "digit" and label in (*DIGIT_NAMES, NOT_A_DIGIT_NAME):
        return label
    if fields.kind == "number" and NUMBER.match(label.replace(" ", "")):
        return label.replace(" ", "")
    wanted = '"0" to "9" or "not a digit"' if fields.kind == "digit" else "only digits, 1 to 40 of them"
    raise DigitnetError(f"label {fields.label!r} is not a {fields.kind}'s answer; send {wanted}")


def class_index(name: str) -> int:
    return NOT_A_DIGIT if name == NOT_A_DIGIT_NAME else int(name)


def seen_digit(data: bytes, source: str, predictor: Predictor, label: str
               ) -> tuple[str, float, store.Seen, bytes]:
    """(answer text, its probability, the 28x28 with what the model said, a PNG of the ink) of
    one digit."""
    digit = imaging.digit_from_bytes(data, source)  # as predict_image
    (answer,) = predictor.answers(predictor.probabilities(digit.image28[None]))
    said = NOT_A_DIGIT if answer.verdict == "not_a_digit" else answer.digit
    ink = digit.ink  # (h, w) bool on the copy the digit was found on
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    box = (cols[0] / ink.shape[1], rows[0] / ink.shape[0],
           (cols[-1] + 1) / ink.shape[1], (rows[-1] + 1) / ink.shape[0]) if rows.size else None
    picture = pictures.png(pictures.ink_crop(digit.picture, box))
    seen = store.Seen(digit.image28, said, answer.probability, class_index(label))
    return answer.text, answer.probability, seen, picture


def seen_number(data: bytes, source: str, reader: LineReader, label: str
                ) -> tuple[str, float, list[store.Seen], bytes]:
    """(the number read, the probability of the whole number, each digit's 28x28 with what the
    line reader said, a PNG of the ink); each digit gets its label only when the label has as
    many digits."""
    reading, gray, _ = number_from_bytes(data, source, reader)
    labels = [int(c) for c in label] if len(label) == len(reading.digits) else [None] * len(reading.digits)
    seen = [store.Seen(d.image28, d.digit, d.probability, y)
            for d, y in zip(reading.digits, labels, strict=True)]
    height, width = gray.shape
    boxes = np.array([d.box for d in reading.digits], np.float64).reshape(-1, 4)  # x, y, w, h
    box = ((boxes[:, 0].min() / width, boxes[:, 1].min() / height,
            (boxes[:, 0] + boxes[:, 2]).max() / width, (boxes[:, 1] + boxes[:, 3]).max() / height)
           if len(boxes) else None)
    return reading.text, reading.probability, seen, pictures.png(pictures.ink_crop(gray, box))


def correct(data: bytes, source: str, fields: CorrectionFields, model: LoadedModel, db: Path,
            client: str | None, limits: store.Limits | None) -> CorrectionOut:
    """Read the image again, store its ink with the person's label (``client``: who sent it,
    an address, kept only as ``store.client_id``), and say what was stored."""
    label = tidy_label(fields)
    if fields.kind == "digit":
        answer, confidence, one, picture = seen_digit(data, source, model.predictor, label)
        seen = [one]
        right = one.answer == one.label
    else:
        answer, confidence, seen, picture = seen_number(data, source, model.line_reader, label)
        right = answer == label
    correction = store.Correction(fields.kind, picture, answer, confidence, label, model.info.run,
                                  model.info.weights_sha256 or "", tuple(seen),
                                  client=None if client is None else store.client_id(db, client))
    ident = store.add(db, correction, limits)
    return CorrectionOut(id=ident, kind=fields.kind, answer=answer, label=label, right=right,
                         labelled_digits=sum(d.label is not None for d in seen),
                         model=model.info.run, created=correction.created)
