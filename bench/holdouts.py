"""Non-digits that training never draws: kinds made by code of their own, not by
``digitnet.training.negatives`` with another seed.

Training's negatives are Fashion-MNIST *training* images, letters and symbols typed in DejaVu
fonts, zigzags, spirals, straight hatching, regular polygons, stars, crossed circles, convex
blobs and specks. The kinds here are drawn differently: by hand-made strokes with a pen whose
width, pressure and taper vary, along smooth Bezier and Catmull-Rom curves:

  doodles    chains of 3-5 cubic Bezier curves
  letters    a stroke alphabet of letters that cannot pass for digits, written with jitter,
             slant and smoothing (no font involved)
  arrows     straight or curved shafts with an open or closed head, any direction
  ticks      check marks
  crosses    hand-drawn x and + marks with uneven arms
  smileys    a face with eyes and a mouth
  hatched    an irregular smooth outline filled with hatching at any angle
  tallies    a tally group: 4 uprights struck through by a fifth stroke
  underlined 2-4 written letters with a line under them
  emoji      hearts, suns with rays, flowers of looping petals

Each is white ink on black and goes through ``negatives.to_field``, the crop, 20 px box and
centring of the reader's preprocessing. Fashion-MNIST *test* images (trousers left out, as in
training) are a hold-out of data rather than of code. Every random choice comes from the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from digitnet.datasets import load
from digitnet.training import negatives

# Letters as strokes in a unit box (x right, y down; capitals 1 tall, small letters from 0.4).
# Only letters no one would read as a digit: no O D Q (0), I l (1), Z (2), S (5), G b (6),
# B (8), g q a (9), T Y (7, 4).
ALPHABET: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0, 1), (0.45, 0), (0.9, 1)], [(0.2, 0.6), (0.7, 0.6)]],
    "E": [[(0.75, 0), (0, 0), (0, 1), (0.75, 1)], [(0, 0.5), (0.55, 0.5)]],
    "F": [[(0.75, 0), (0, 0), (0, 1)], [(0, 0.48), (0.55, 0.48)]],
    "H": [[(0, 0), (0, 1)], [(0.75, 0), (0.75, 1)], [(0, 0.5), (0.75, 0.5)]],
    "K": [[(0, 0), (0, 1)], [(0.75, 0), (0.05, 0.55), (0.8, 1)]],
    "M": [[(0, 1), (0.05, 0), (0.45, 0.65), (0.85, 0), (0.9, 1)]],
    "N": [[(0, 1), (0, 0), (0.75, 1), (0.75, 0)]],
    "R": [[(0, 1), (0, 0), (0.5, 0), (0.72, 0.13), (0.72, 0.35), (0.5, 0.48), (0, 0.48)],
          [(0.3, 0.48), (0.8, 1)]],
    "W": [[(0, 0), (0.22, 1), (0.45, 0.35), (0.68, 1), (0.9, 0)]],
    "X": [[(0, 0), (0.8, 1)], [(0.8, 0), (0, 1)]],
    "k": [[(0, 0), (0, 1)], [(0.55, 0.4), (0.03, 0.75), (0.6, 1)]],
    "m": [[(0, 1), (0, 0.42)], [(0, 0.58), (0.12, 0.42), (0.32, 0.42), (0.42, 0.58), (0.42, 1)],
          [(0.42, 0.58), (0.55, 0.42), (0.75, 0.42), (0.85, 0.58), (0.85, 1)]],
    "w": [[(0, 0.4), (0.18, 1), (0.38, 0.55), (0.58, 1), (0.76, 0.4)]],
    "h": [[(0, 0), (0, 1)], [(0, 0.62), (0.18, 0.44), (0.45, 0.44), (0.58, 0.6), (0.58, 1)]],
    "e": [[(0.05, 0.72), (0.6, 0.72), (0.58, 0.55), (0.45, 0.42), (0.2, 0.42), (0.04, 0.58),
           (0.03, 0.85), (0.2, 1), (0.45, 1), (0.6, 0.9)]],
    "u": [[(0, 0.4), (0, 0.85), (0.15, 1), (0.45, 1), (0.6, 0.85)], [(0.6, 0.4), (0.6, 1)]],
}


def _canvas(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    size = int(rng.integers(72, 129))
    return np.zeros((size, size), np.float32), size


def pen_stroke(canvas: np.ndarray, points: np.ndarray, width: float, rng: np.random.Generator,
               pressure: float = 1.0) -> None:
    """Draw float (k, 2) points as one stroke: round discs every half pixel along the path, the
    width swelling and tapering by up to 40% (ballpoint to brush), ink ``pressure`` (pencil)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    along = np.r_[0, np.cumsum(seg)]
    if along[-1] <= 0:
        return
    t = np.linspace(0, along[-1], max(2, int(along[-1] * 2)))
    xy = np.stack([np.interp(t, along, points[:, 0]), np.interp(t, along, points[:, 1])], 1)
    swell = 1 + rng.uniform(-0.4, 0.4) * np.sin(np.pi * t / t[-1] + rng.uniform(0, np.pi))
    for (x, y), s in zip(xy, swell, strict=True):
        cv2.circle(canvas, (int(round(x * 4)), int(round(y * 4))), max(2, int(round(width * s * 2))),
                   pressure, -1, cv2.LINE_AA, shift=2)


def _pen(size: int, rng: np.random.Generator) -> tuple[float, float]:
    """(half-width in px, pressure): hairline to marker, light pencil to full ink."""
    return float(size * rng.uniform(0.008, 0.05)), float(rng.uniform(0.45, 1.0))


def bezier(p: np.ndarray, n: int = 40) -> np.ndarray:
    """Cubic Bezier through 4 control points (4, 2) -> (n, 2)."""
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t ** 2 * p[2] + t ** 3 * p[3]


def catmull_rom(p: np.ndarray, n: int = 12, closed: bool = False) -> np.ndarray:
    """A smooth curve through points (k, 2), ``n`` samples per span -> (m, 2)."""
    q = np.concatenate([p[-1:], p, p[:2]]) if closed else np.concatenate([p[:1], p, p[-1:]])
    t = np.linspace(0, 1, n, endpoint=False)[:, None]
    spans = []
    for i in range(len(q) - 3):
        a, b, c, d = q[i : i + 4]
        spans.append(0.5 * (2 * b + (c - a) * t + (2 * a - 5 * b + 4 * c - d) * t ** 2
                            + (3 * b - a - 3 * c + d) * t ** 3))
    return np.concatenate(spans + [q[-2:-1] if not closed else q[1:2]])


def doodle(rng: np.random.Generator) -> np.ndarray:
    canvas, s = _canvas(rng)
    width, pressure = _pen(s, rng)
    point = rng.uniform(0.15 * s, 0.85 * s, 2)
    path = []
    for _ in range(int(rng.integers(3, 6))):
        ctrl = np.vstack([point, rng.uniform(0.05 * s, 0.95 * s, (3, 2))])
        path.append(bezier(ctrl))
        point = ctrl[-1]
    pen_stroke(canvas, np.concatenate(path), width, rng, pressure)
    return canvas


def _write(canvas: np.ndarray, letter: str, box: tuple[float, float, float], rng: np.random.Generator,
           width: float, pressure: float, slant: float) -> None:
    """One letter of ``ALPHABET`` with its left edge at x, top at y, ``h`` tall."""
    x, y, h = box
    for stroke in ALPHABET[letter]:
        p = np.array(stroke, np.float64) + rng.normal(0, 0.03, (len(stroke), 2))
        p[:, 0] += slant * (1 - p[:, 1])
        if rng.random() < 0.5:
            p = catmull_rom(p, 6)
        pen_stroke(canvas, np.c_[x + p[:, 0] * h * rng.uniform(0.85, 1.15), y + p[:, 1] * h], width, rng,
                   pressure)


def letter(rng: np.random.Generator) -> np.ndarray:
    canvas, s = _canvas(rng)
    width, pressure = _pen(s, rng)
    _write(canvas, str(rng.choice(list(ALPHABET))), (0.2 * s, 0.15 * s, 0.65 * s), rng, width, pressure,
           float(rng.uniform(-0.25, 0.35)))
    return canvas


def underlined(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(2, 5))
    h = 40.0
    canvas = np.zeros((int(h * 1.8), int(h * (n + 1))), np.float32)
    width, pressure = _pen(int(h * 1.5), rng)
    slant = float(rng.uniform(-0.2, 0.3))
    for i, ch in enumerate(rng.choice(list(ALPHABET), n)):
        _write(canvas, str(ch), (0.4 * h + i * 0.95 * h, 0.2 * h, h), rng, width, pressure, slant)
    y = 1.4 * h + rng.normal(0, 2)
    line = np.array([[0.3 * h, y], [(n + 0.5) * h, y + rng.normal(0, 3)]])
    pen_stroke(canvas, catmull_rom(np.vstack([line[0], line.mean(0) + rng.normal(0, 2, 2), line[1]]), 8),
               width, rng, pressure)
    return canvas


def _rotated(points: np.ndarray, angle: float, centre: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return (points - centre) @ np.array([[c, s], [-s, c]]) + centre


def arrow(rng: np.random.Generator) -> np.ndarray:
    canvas, s = _canvas(rng)
    width, pressure = _pen(s, rng)
    angle = rng.uniform(0, 2 * np.pi)
    c = np.array([s / 2, s / 2])
    tail, tip = c - [0.4 * s, 0], c + [0.4 * s, 0]
    bend = np.array([0, rng.choice([0.0, rng.uniform(-0.25, 0.25)]) * s])
    shaft = catmull_rom(np.vstack([tail, c + bend, tip]), 10)
    head_len, spread = rng.uniform(0.15, 0.3) * s, np.radians(rng.uniform(25, 40))
    back = np.arctan2(*(shaft[-3] - tip)[::-1])
    wings = [tip + head_len * np.array([np.cos(back + a), np.sin(back + a)]) for a in (spread, -spread)]
    head = np.vstack([wings[0], tip, wings[1]] + ([wings[0]] if rng.random() < 0.3 else []))
    for stroke in (shaft, head):
        pen_stroke(canvas, _rotated(stroke, angle, c), width, rng, pressure)
    return canvas


def tick(rng: np.random.Generator) -> np.ndarray:
    canvas, s = _canvas(rng)
    width, pressure = _pen(s, rng)
    p = np.array([[0.1, 0.55], [rng.uniform(0.3, 0.42), 0.9], [0.9, rng.uniform(0.05, 0.2)]]) * s
    p = catmull_rom(p + rng.normal(0, 0.02 * s, p.shape), 10)
    pen_stroke(canvas, _rotated(p, rng.uniform(-0.35, 0.35), np.array([s / 2, s / 2])), width, rng, pressure)
    return canvas


def cross(rng: np.random.Generator) -> np.ndarray:
    canvas, s = _canvas(rng)
    width, pressure = _pen(s, rng)
    base = rng.choice([np.pi / 4, 0.0]) + rng.normal(0, 0.15)
    c = np.array([s / 2, s / 2]) + rng.normal(0, 0.04 * s, 2)
    for a in (base, base + np.pi / 2 + rng.normal(0, 0.15)):
        d = np.array([np.cos(a), np.sin(a)])
        ends = np.vstack([c - d * rng.uniform(0.25, 0.45) * s, c + d * rng.uniform(0.25, 0.45) * s])
        pen_stroke(canvas, catmull_rom(np.vstack([ends[0], ends.mean(0) + rng.normal(0, 0.02 * s, 2),
                                                  ends[1]]), 8), width, rng, pressure)
    return canvas


def _ellipse(c: np.ndarray, r: tuple[float, float], start: float, end: float, n: int = 60) -> np.ndarray:
    t = np.linspace(start, end, n)
    return np.stack([c[0] + r[0] * np.cos(t), c[1] + r[1] * np.sin(t)], 1)


def smiley(rng: np.random.Generator) -> np.ndarray:
    canvas, s = _canvas(rng)
    width, pressure = _pen(s, rng)
    c, r = np.array([s / 2, s / 2]), 0.42 * s * rng.uniform(0.85, 1.0, 2)
    start = rng.uniform(0, 2 * np.pi)
    pen_stroke(canvas, _ellipse(c, tuple(r), start, start + rng.uniform(1.9, 2.05) * np.pi), width, rng,
               pressure)
    for side in (-1, 1):
        eye = c + [side * 0.35 * r[0], -0.3 * r[1]]
        pen_stroke(canvas, np.vstack([eye, eye + [0, rng.uniform(0.05, 0.2) * r[1]]]), width * 1.3, rng,
                   pressure)
    mood = rng.choice([1.0, -1.0, 0.0], p=[0.7, 0.15, 0.15])  # smile, frown, straight mouth
    mouth = c + [0, 0.3 * r[1]] + _ellipse(np.zeros(2), (0.5 * r[0], 0.25 * r[1] * mood), 0.15 * np.pi,
                                           0.85 * np.pi, 30)
    pen_stroke(canvas, mouth, width, rng, pressure)
    return canvas


def _blob_outline(c: np.ndarray, r: float, rng: np.random.Generator) -> np.ndarray:
    t = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(6, 10))))
    radii = r * rng.uniform(0.55, 1.0, len(t))
    return catmull_rom(np.stack([c[0] + radii * np.cos(t), c[1] + radii * np.sin(t)], 1), 10, closed=True)


def hatched(rng: np.random.Generator) -> np.ndarray:
    canvas, s = _canvas(rng)
    width, pressure = _pen(s, rng)
    outline = _blob_outline(np.array([s / 2, s / 2]), 0.45 * s, rng)
    inside = np.zeros_like(canvas)
    cv2.fillPoly(inside, [np.round(outline).astype(np.int32)], 1.0)
    lines = np.zeros_like(canvas)
    a = rng.uniform(0, np.pi)
    d, normal = np.array([np.cos(a), np.sin(a)]) * s, np.array([-np.sin(a), np.cos(a)])
    for off in np.arange(-0.5 * s, 0.5 * s, rng.uniform(0.07, 0.14) * s):
        mid = np.array([s / 2, s / 2]) + normal * off
        pen_stroke(lines, np.vstack([mid - d, mid + d]), width * 0.7, rng, pressure)
    np.maximum(canvas, lines * inside, out=canvas)
    if rng.random() < 0.7:
        pen_stroke(canvas, outline, width, rng, pressure)
    return canvas


def tally(rng: np.random.Generator) -> np.ndarray:
    canvas, s = _canvas(rng)
    width, pressure = _pen(s, rng)
    xs = 0.2 * s + np.arange(4) * rng.uniform(0.14, 0.2) * s
    for x in xs:
        top = np.array([x + rng.normal(0, 0.02 * s), 0.15 * s + rng.normal(0, 0.03 * s)])
        pen_stroke(canvas, np.vstack([top, top + [rng.normal(0, 0.04 * s), 0.7 * s]]), width, rng, pressure)
    strike = np.array([[xs[0] - 0.1 * s, 0.7 * s], [xs[-1] + 0.1 * s, 0.3 * s]])
    strike += rng.normal(0, 0.03 * s, (2, 2))
    pen_stroke(canvas, strike, width, rng, pressure)
    return canvas


def emoji(rng: np.random.Generator) -> np.ndarray:
    canvas, s = _canvas(rng)
    width, pressure = _pen(s, rng)
    c, kind = np.array([s / 2, s / 2]), rng.integers(3)
    if kind == 0:  # heart
        t = np.linspace(0, 2 * np.pi, 120)
        p = np.stack([16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t)
                                              - np.cos(4 * t))], 1) * (0.025 * s) + c
        if rng.random() < 0.4:
            cv2.fillPoly(canvas, [np.round(p).astype(np.int32)], pressure, cv2.LINE_AA)
        else:
            pen_stroke(canvas, p, width, rng, pressure)
    elif kind == 1:  # sun: a disc or ring with 6-12 rays
        r = 0.2 * s
        pen_stroke(canvas, _ellipse(c, (r, r), 0, 2 * np.pi), width, rng, pressure)
        for a in np.linspace(0, 2 * np.pi, int(rng.integers(6, 13)), endpoint=False) + rng.uniform(0, 1):
            d = np.array([np.cos(a), np.sin(a)])
            pen_stroke(canvas, np.vstack([c + d * 1.4 * r, c + d * rng.uniform(2.0, 2.4) * r]), width, rng,
                       pressure)
    else:  # flower: 5-8 looping petals round a centre
        k = int(rng.integers(5, 9))
        t = np.linspace(0, 2 * np.pi, 240)
        radius = 0.42 * s * np.abs(np.cos(k / 2 * t)) ** rng.uniform(0.5, 1.0)
        pen_stroke(canvas, np.stack([c[0] + radius * np.cos(t), c[1] + radius * np.sin(t)], 1), width, rng,
                   pressure)
    return canvas


DRAWN: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "doodles": doodle, "letters (strokes)": letter, "arrows": arrow, "ticks": tick, "crosses": cross,
    "smileys": smiley, "hatched blobs": hatched, "tallies": tally, "underlined words": underlined,
    "emoji": emoji,
}


def held_out(per_kind: int, rng: np.random.Generator, fashion: int | None = None) -> dict[str, np.ndarray]:
    """uint8 (n, 28, 28) fields of every held-out kind: ``per_kind`` drawn images each, and
    ``fashion`` Fashion-MNIST test images (all 9,000 without trousers when None)."""
    sets = {name: negatives.render(name, per_kind, rng, draw) for name, draw in DRAWN.items()}
    ds = load("fashion-mnist")
    images = ds.x_test[ds.y_test != negatives.FASHION_TROUSER]
    if fashion is not None:
        images = images[rng.choice(len(images), min(fashion, len(images)), replace=False)]
    sets["Fashion-MNIST test"] = negatives.fashion_fields(images)
    return sets


def training_generators(per_kind: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The kinds training draws, with another seed (and letters in the DejaVu faces training
    leaves out): a check that training's own kinds are learnt, not a hold-out."""
    unseen = lambda r: negatives.glyph(r, negatives.HOLDOUT_FONTS, max_rotation=30.0)  # noqa: E731
    return {"letters (other DejaVu faces)": negatives.render("glyph", per_kind, rng, unseen),
            "scribbles": negatives.render("scribble", per_kind, rng),
            "shapes": negatives.render("shape", per_kind, rng),
            "specks": negatives.render("specks", max(1, per_kind // 4), rng)}
