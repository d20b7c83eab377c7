"""Renderers for "not a digit" images: letters and symbols, scribbles, geometric shapes, specks.

Each renderer draws white ink on black at 64-112 px and passes it through the same steps the
reader's preprocessing applies to a photo (crop to the ink, longer side to 20 px, ink stretched,
centre of mass centred in 28x28), so negatives look like what the reader will be shown.
Every random choice comes from the ``numpy.random.Generator`` passed in. Fonts come from
matplotlib's own copy of DejaVu, so every machine renders the same letters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitnet.vision import imaging

TRAIN_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
               "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf",
               "DejaVuSansMono-Bold.ttf")
# kept out of training, for the hold-out benchmark
HOLDOUT_FONTS = ("DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono-BoldOblique.ttf",
                 "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono-Oblique.ttf")
FASHION_TROUSER = 1  # Fashion-MNIST's label for trousers
# Fashion-MNIST images and rendered kinds, in the proportions of a pool of negatives
MIX = {"fashion": 0.42, "glyph": 0.28, "scribble": 0.14, "shape": 0.12, "specks": 0.04}
# Letters and symbols that cannot pass for a digit. Left out: O o Q D (0), I l i j | ! / \ ( ) [ ]
# ' " ; (1 once scaled up), Z z (2), } (3), S s $ (5), G b (6), B & (8), g q a (9), and T Y y
# (7, 4 when written quickly).
GLYPHS = "ACEFHJKLMNPRUVWXcdefhkmnprtuvwx+-*=?#@%<>~^"
GLYPH_SIZES = (40, 81)  # px, the range a letter is set at (upper bound excluded)


def to_field(ink: np.ndarray) -> np.ndarray | None:
    """White-on-black ink (any size) -> uint8 (28, 28) as the reader's preprocessing makes it,
    or None when nothing is left."""
    ink = np.asarray(ink, np.float32)
    if ink.max() <= 0:
        return None
    ys, xs = np.nonzero(ink > 0.1 * ink.max())
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] * (255.0 / ink.max())
    try:
        return imaging.centre_in_field(imaging.fit_box(crop))
    except imaging.ImageError:
        return None


@functools.cache
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def typeset(text: str, font: str, size: int) -> Image.Image:
    """``text`` set in the matplotlib-bundled ``font`` at ``size`` px, white on black, centred
    on a 112x112 canvas (8-bit grey)."""
    canvas = Image.new("L", (112, 112))
    ImageDraw.Draw(canvas).text((56, 56), text, fill=255, font=_font(font, size), anchor="mm")
    return canvas


def glyph(rng: np.random.Generator, fonts: Sequence[str] = TRAIN_FONTS,
          max_rotation: float = 15.0) -> Image.Image:
    """One letter or symbol in a random font, size and rotation (112x112, 8-bit grey)."""
    font, size = str(rng.choice(fonts)), int(rng.integers(*GLYPH_SIZES))
    canvas = typeset(str(rng.choice(list(GLYPHS))), font, size)
    return canvas.rotate(float(rng.uniform(-max_rotation, max_rotation)), Image.BILINEAR)


def _canvas(rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """A black float32 canvas of random size 64-112 px and a pen width for it."""
    size = int(rng.integers(64, 113))
    return np.zeros((size, size), np.float32), size, max(1, int(size * rng.uniform(0.03, 0.12)))


def _draw(canvas: np.ndarray, points: np.ndarray, width: int, closed: bool = False) -> np.ndarray:
    cv2.polylines(canvas, [np.round(points).astype(np.int32)], closed, 1.0, width, cv2.LINE_AA)
    return canvas


def scribble(rng: np.random.Generator) -> np.ndarray:
    """A random zigzag of 5-9 strokes, a spiral of 1.5-4 turns, or hatching of 3-7 lines."""
    canvas, s, w = _canvas(rng)
    kind = rng.integers(3)
    if kind == 0:
        return _draw(canvas, rng.uniform(0.1 * s, 0.9 * s, (int(rng.integers(6, 11)), 2)), w)
    if kind == 1:
        t = np.linspace(0, 2 * np.pi * rng.uniform(1.5, 4), 200)
        r = 0.4 * s * (t / t[-1]) ** rng.uniform(0.7, 1.3)
        pts = np.stack([s / 2 + r * np.cos(t), s / 2 + rng.choice([-1, 1]) * r * np.sin(t)], 1)
        return _draw(canvas, pts, max(1, w // 2))
    angle, cross = rng.uniform(0, np.pi), rng.random() < 0.4
    for a in (angle, angle + np.pi / 2)[: 1 + cross]:
        d = np.array([np.cos(a), np.sin(a)]) * 0.45 * s
        normal = np.array([-d[1], d[0]]) / (0.45 * s)
        for off in np.linspace(-0.35 * s, 0.35 * s, int(rng.integers(3, 8))):
            c = s / 2 + normal * off
            _draw(canvas, np.stack([c - d, c + d]), max(1, w // 2))
    return canvas


def shape(rng: np.random.Generator) -> np.ndarray:
    """A triangle, box, star, polygon, circle with a cross through it, or a filled blob.
    No plain rings or long thin blobs: those are a 0 or a 1."""
    canvas, s, w = _canvas(rng)
    c, r = np.array([s / 2, s / 2]), 0.4 * s
    kind = rng.integers(5)
    if kind == 0:  # regular polygon with 3-6 corners, or a box of aspect 0.6-1.6
        k = int(rng.integers(3, 7))
        t = rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k
        pts = c + r * np.stack([np.cos(t), np.sin(t)], 1) * [1, rng.uniform(0.6, 1.6)]
    elif kind == 1:  # star with 5-7 points
        k = 2 * int(rng.integers(5, 8))
        t = rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k
        pts = c + (r * np.where(np.arange(k) % 2, 0.45, 1.0))[:, None] * np.stack([np.cos(t), np.sin(t)], 1)
    elif kind == 2:  # circle with a + or x through it
        cv2.circle(canvas, (s // 2, s // 2), int(r * 0.8), 1.0, w, cv2.LINE_AA)
        t = rng.uniform(0, np.pi / 2) + np.array([0, np.pi / 2])
        for a in t:
            d = r * np.array([np.cos(a), np.sin(a)])
            _draw(canvas, np.stack([c - d, c + d]), w)
        return canvas
    else:  # filled blob: the hull of points at 0.5-1 radius all round, so never a thin sliver
        t = rng.uniform(0, 2 * np.pi, int(rng.integers(5, 12)))
        pts = c + (r * rng.uniform(0.5, 1.0, len(t)))[:, None] * np.stack([np.cos(t), np.sin(t)], 1)
        cv2.fillPoly(canvas, [cv2.convexHull(np.round(pts).astype(np.int32))], 1.0, cv2.LINE_AA)
        return canvas
    if rng.random() < 0.3:
        cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1.0, cv2.LINE_AA)
        return canvas
    return _draw(canvas, pts, w, closed=True)


def specks(rng: np.random.Generator) -> np.ndarray:
    """A near-blank page: one to three dots or a faint sprinkle of dust, anywhere."""
    canvas, s, _ = _canvas(rng)
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 4))):
            x, y = rng.integers(0, s, 2)
            cv2.circle(canvas, (int(x), int(y)), int(rng.integers(1, 4)), float(rng.uniform(0.3, 1)), -1,
                       cv2.LINE_AA)
        return canvas
    return (rng.random((s, s)) < rng.uniform(0.002, 0.02)).astype(np.float32) * rng.uniform(0.3, 1)


RENDERERS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "glyph": glyph, "scribble": scribble, "shape": shape, "specks": specks,
}


def render(kind: str, n: int, rng: np.random.Generator,
           renderer: Callable[[np.random.Generator], np.ndarray] | None = None) -> np.ndarray:
    """n images of one kind -> uint8 (n, 28, 28); a custom renderer overrides the kind's."""
    draw = renderer or RENDERERS[kind]
    out = []
    while len(out) < n:
        field = to_field(np.asarray(draw(rng), np.float32))
        if field is not None:
            out.append(field)
    return np.stack(out)


def fashion_fields(images: np.ndarray) -> np.ndarray:
    """Fashion-MNIST uint8 (n, 28, 28) (light object on black) -> preprocessed like a photo."""
    fields = [to_field(im) for im in images]
    return np.stack([f for f in fields if f is not None])


def fashion_images(ds) -> np.ndarray:
    """Fashion-MNIST's training images fit to be negatives: uint8 (n, 28, 28) without trousers,
    which scaled to a 20-pixel box are a thick 1."""
    return ds.x_train[ds.y_train != FASHION_TROUSER]


def pool(n: int, fashion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` negatives in the proportions of ``MIX`` -> uint8 (n, 28, 28): Fashion-MNIST images
    drawn from ``fashion`` (uint8 (m, 28, 28), trousers already left out) and rendered letters,
    scribbles, shapes, specks."""
    counts = {kind: int(round(share * n)) for kind, share in MIX.items()}
    wanted = counts.pop("fashion")
    pick = rng.choice(len(fashion), wanted, replace=wanted > len(fashion))
    parts = [fashion_fields(fashion[pick])] + [render(k, c, rng) for k, c in counts.items() if c]
    short = n - sum(len(part) for part in parts)  # rounding, or a blank Fashion-MNIST image
    if short > 0:
        parts.append(render("glyph", short, rng))
    return np.concatenate(parts)[:n]
