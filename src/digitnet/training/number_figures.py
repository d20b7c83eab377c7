"""A line reader's test figures: whole numbers composed from MNIST **test** digits, photographed
(``vision.render.render_number``) in each spacing of ``render.SPACINGS`` and read as ``digitnet
read`` reads them (``vision.numbers.read_number``).

Measured once training and every choice (temperature, ``close``) are done; nothing here feeds
back into training. ``make line-reader`` records these figures in the line reader's
metrics.json under ``test``; ``bench/read_numbers.py`` composes its numbers the same way.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from digitnet.errors import DigitnetError

# a module import: line_reader imports this module while it loads, and edit_distance is used
# only once both have loaded
from digitnet.training import line_reader
from digitnet.training.calibrate import binned_gap
from digitnet.vision import numbers, render

LENGTHS = (2, 7)  # digits per number, inclusive
TEST_SEED = 20261206  # the numbers' own stream, apart from every training seed


def compose(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator
            ) -> list[tuple[str, str, np.ndarray]]:
    """(spacing, true text, uint8 BGR photo) of ``n`` numbers of 2-7 digits drawn from uint8
    (m, 28, 28) digits ``x`` and labels ``y``; the spacings take turns."""
    kinds = list(render.SPACINGS)
    cases = []
    for k in range(n):
        idx = rng.choice(len(x), int(rng.integers(LENGTHS[0], LENGTHS[1] + 1)), replace=False)
        kind = kinds[k % len(kinds)]
        image = render.render_number(list(x[idx]), rng, spacing=kind)
        cases.append((kind, "".join(str(int(d)) for d in y[idx]), image))
    return cases


def read_all(reader: numbers.LineModel, cases: list[tuple[str, str, np.ndarray]]
             ) -> list[tuple[str, str, str, float, list[float]]]:
    """(spacing, truth, text read, the number's probability, each digit's probability) per case;
    an image refused as blank or unreadable reads as "" with probability 0."""
    out = []
    for kind, truth, image in cases:
        try:
            reading = numbers.read_number(image, reader)
            out.append((kind, truth, reading.text, reading.probability,
                        [d.probability for d in reading.digits]))
        except DigitnetError:
            out.append((kind, truth, "", 0.0, []))
    return out


def summarise(readings: list[tuple[str, str, str, float, list[float]]]) -> dict[str, Any]:
    """Exact numbers and per-digit accuracy (1 - edit distance / length) by spacing and over
    all; calibration: the ECE of the number's probability against "read exactly", and of each
    digit's probability against "this digit is right" over the numbers read with the right
    number of digits."""
    rows: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    confidence, exact, digit_p, digit_right = [], [], [], []
    for kind, truth, text, probability, digit_probs in readings:
        score = (text == truth, max(0.0, 1 - line_reader.edit_distance(list(text), list(truth)) / len(truth)))
        rows[kind].append(score)
        rows["all"].append(score)
        confidence.append(probability)
        exact.append(float(text == truth))
        if len(text) == len(truth):
            digit_p.extend(digit_probs)
            digit_right.extend(float(a == b) for a, b in zip(text, truth, strict=True))
    figures = {k: {"numbers": len(rows[k]), "exact": float(np.mean([e for e, _ in rows[k]])),
                   "per_digit": float(np.mean([d for _, d in rows[k]]))}
               for k in [*render.SPACINGS, "all"] if rows[k]}
    gap = binned_gap
    return {"by_spacing": figures, "exact": figures["all"]["exact"], "per_digit": figures["all"]["per_digit"],
            "number_ece": gap(torch.tensor(confidence), torch.tensor(exact)),
            "digit_ece": gap(torch.tensor(digit_p), torch.tensor(digit_right)) if digit_p else None}


def test_figures(reader: numbers.LineModel, x_test: np.ndarray, y_test: np.ndarray, n: int,
                 seed: int = TEST_SEED) -> dict[str, Any]:
    """The figures of ``summarise`` for ``n`` numbers composed from MNIST test digits."""
    cases = compose(x_test, y_test, n, np.random.default_rng(seed))
    return {"source": "MNIST test digits, photographed numbers (vision.render.render_number)",
            "seed": seed, **summarise(read_all(reader, cases))}
