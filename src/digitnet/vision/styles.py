"""Digits in writing styles that MNIST has few of, drawn the way the web page draws them:
dark round-capped strokes on a white 280x280 canvas, each writer with their own size, place,
slant, proportions and pen (seeded, for tests and benchmarks).

- ``seven_crossbar``: a 7 with a bar across its stem, as written in much of Europe
- ``one_flag``: a 1 with a long up-stroke (flag) and no base
- ``four_open``: a 4 whose two upright strokes do not meet at the top

A style is a function of a random generator returning strokes in a unit box (x right, y down,
the digit 1 tall); ``render`` places them on the canvas. Every random choice comes from the
``numpy.random.Generator`` passed in, so a seed gives the same drawings on every machine.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from digitnet.errors import DigitnetError

CANVAS = 280  # the page's drawing canvas (px, square)
STROKE = 0.09  # the page's pen: 9% of the canvas height

Strokes = list[np.ndarray]  # each (k, 2) float points, x right and y down, in the unit box


def seven_crossbar(rng: np.random.Generator) -> Strokes:
    """Top bar, stem down to the left, and a short bar across the stem near its middle."""
    width = rng.uniform(0.55, 0.8)
    foot = rng.uniform(0.15, 0.4) * width  # where the stem ends, from the left
    droop = rng.uniform(-0.05, 0.08)  # the top bar's right end sits this much lower
    top = np.array([[0.0, 0.0], [width, droop], [foot, 1.0]])
    at = rng.uniform(0.45, 0.6)  # height of the crossbar, as a fraction of the stem
    centre = top[1] + at * (top[2] - top[1])
    half = rng.uniform(0.18, 0.3) * width / 0.7
    tilt = rng.uniform(-0.04, 0.04)
    bar = np.array([[centre[0] - half, centre[1] + tilt], [centre[0] + half, centre[1] - tilt]])
    return [top, bar]


def one_flag(rng: np.random.Generator) -> Strokes:
    """A long flag from the left up to the top of the stem, then the stem straight down."""
    length = rng.uniform(0.35, 0.55)  # the flag, as a fraction of the height
    angle = np.radians(rng.uniform(25, 50))  # below the horizontal, going left from the top
    start = [-length * np.cos(angle), length * np.sin(angle)]
    return [np.array([start, [0.0, 0.0], [0.0, 1.0]])]


def four_open(rng: np.random.Generator) -> Strokes:
    """Left stroke down to the crossbar and across; the right stroke from higher than the left
    stroke starts, down to the baseline: the top stays open."""
    width = rng.uniform(0.55, 0.75)
    bar = rng.uniform(0.55, 0.68)  # the crossbar's height
    stem = rng.uniform(0.6, 0.75) * width
    left = np.array([[rng.uniform(0.1, 0.25) * width, rng.uniform(0.0, 0.1)], [0.0, bar],
                     [width, bar - rng.uniform(0.0, 0.04)]])
    right = np.array([[stem + rng.uniform(-0.05, 0.05), -rng.uniform(0.0, 0.05)], [stem, 1.0]])
    return [left, right]


STYLES: dict[str, tuple[Callable[[np.random.Generator], Strokes], int]] = {
    # name: (the strokes, the digit they are)
    "seven_crossbar": (seven_crossbar, 7),
    "one_flag": (one_flag, 1),
    "four_open": (four_open, 4),
}


def digit_of(style: str) -> int:
    return STYLES[check(style)][1]


def check(style: str) -> str:
    if style not in STYLES:
        raise DigitnetError(f"unknown writing style {style!r}; choose one of: {', '.join(STYLES)}")
    return style


def _wobble(points: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """A hand's unsteadiness: each stroke resampled to 24 points per segment, with smooth
    random displacement of about ``amount`` (unit-box units)."""
    out = []
    for a, b in zip(points[:-1], points[1:], strict=True):
        t = np.linspace(0, 1, 24, endpoint=False)[:, None]
        out.append(a + t * (b - a))
    out.append(points[-1:])
    dense = np.concatenate(out)
    noise = np.cumsum(rng.normal(0, amount / 4, dense.shape), axis=0)
    noise -= np.linspace(0, 1, len(dense))[:, None] * noise[-1]  # ends stay where they were
    return dense + noise


def render(style: str, rng: np.random.Generator) -> np.ndarray:
    """One digit of ``style`` as the page's canvas would hold it: uint8 (280, 280), dark ink on
    white. Size 45-80% of the canvas height, anywhere on it, slanted by up to 15 degrees either
    way and rotated by up to 8, with a pen of 7-11% of the canvas height."""
    strokes = [np.asarray(s, np.float64) for s in STYLES[check(style)][0](rng)]
    slant = np.tan(np.radians(rng.uniform(-15, 15)))
    angle = np.radians(rng.uniform(-8, 8))
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    strokes = [_wobble(s, rng, 0.01) for s in strokes]
    # slant the upright strokes (x shifts with height above the baseline y = 1), then rotate
    strokes = [(s + np.stack([slant * (1 - s[:, 1]), np.zeros(len(s))], 1)) @ rotate.T for s in strokes]
    points = np.concatenate(strokes)
    low, high = points.min(0), points.max(0)
    height = rng.uniform(0.45, 0.8) * CANVAS
    scale = height / (high[1] - low[1])
    size = (high - low) * scale
    pen = int(round(rng.uniform(0.07, 0.11) * CANVAS))
    margin = pen / 2 + 2
    room = np.maximum(CANVAS - 2 * margin - size, 0)
    origin = margin + rng.uniform(0, 1, 2) * room
    canvas = np.full((CANVAS, CANVAS), 255, np.uint8)
    for s in strokes:
        xy = np.round((s - low) * scale + origin).astype(np.int32)
        cv2.polylines(canvas, [xy], False, 17, pen, cv2.LINE_AA)  # the page's ink, #111
    return canvas


def render_many(style: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` drawings of ``style``: uint8 (n, 280, 280), dark on white."""
    return np.stack([render(style, rng) for _ in range(n)]) if n else np.zeros((0, CANVAS, CANVAS),
                                                                                np.uint8)
