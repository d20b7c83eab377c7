"""Render MNIST digits the way people photograph their own handwriting (seeded, for tests and
benchmarks): dark ink on light, tinted or textured paper, any position and size on a 100-400 px
canvas, uneven light, blur, sensor noise, JPEG compression, a slight rotation, thicker or
thinner strokes.

Every random choice comes from the ``numpy.random.Generator`` passed in, so a seed gives the
same pictures on every machine. ``render_photo`` also returns which effects it applied, so a
benchmark can say which kinds of picture the model gets wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

# Probability of each optional effect; each is drawn independently per image.
EFFECTS = {
    "tint": 0.5,
    "texture": 0.5,
    "uneven_light": 0.5,
    "blur": 0.5,
    "noise": 0.5,
    "jpeg": 0.5,
    "rotation": 0.7,
    "thick": 0.2,
    "thin": 0.2,
}
# The harshest photos (``render_photo(digit, rng, HARSH, HARSH_JPEG_QUALITY)``): every effect, a
# pen always thicker or thinner, rotation to 15 degrees, JPEG at quality 55 (bench/photos.py).
HARSH = {**dict.fromkeys(EFFECTS, 1.0), "thick": 0.5, "thin": 0.5}
HARSH_JPEG_QUALITY = 55


def _resize(piece: np.ndarray, scale: float) -> np.ndarray:
    """uint8 (28, w) white-on-black -> float32 ink coverage in [0, 1], ``scale`` times larger."""
    size = (max(1, round(piece.shape[1] * scale)), round(piece.shape[0] * scale))
    big = cv2.resize(piece.astype(np.float32) / 255.0, size, interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0.0, 1.0)


def _pen(scale: float, rng: np.random.Generator, info: dict[str, Any], effects: dict[str, float] = EFFECTS
         ) -> Callable[[np.ndarray], np.ndarray]:
    """The pen, chosen once per picture: thicker (felt pen) or thinner (fine pen) strokes by
    grey dilation or erosion of about one MNIST pixel (``scale`` canvas px per MNIST px)."""
    choice = rng.random()
    if choice < effects["thick"]:
        k = max(2, round(scale * rng.uniform(0.8, 1.6)))
        info["thick"] = k
        return lambda ink: cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    if choice < effects["thick"] + effects["thin"]:
        k = max(2, round(scale * rng.uniform(0.5, 0.9)))
        info["thin"] = k
        return lambda ink: cv2.erode(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return lambda ink: ink


def _rotate(ink: np.ndarray, rng: np.random.Generator, info: dict[str, Any], limit: float,
            effects: dict[str, float] = EFFECTS) -> np.ndarray:
    if rng.random() >= effects["rotation"]:
        return ink
    angle = float(rng.uniform(-limit, limit))
    info["rotation"] = round(angle, 1)
    h, w = ink.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(ink, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


def _paper(h: int, w: int, rng: np.random.Generator, info: dict[str, Any], effects: dict[str, float]
           ) -> np.ndarray:
    """float32 (h, w, 3) BGR paper in [0, 255]: white-ish, maybe tinted, maybe grainy."""
    base = np.full(3, rng.uniform(215, 250), np.float32)
    if rng.random() < effects["tint"]:
        tint = rng.uniform(-35, 10, 3).astype(np.float32)  # yellowed, bluish, pinkish, grey paper
        info["tint"] = [round(float(t)) for t in tint]
        base = base + tint
    paper = np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    if rng.random() < effects["texture"]:
        amount = float(rng.uniform(3, 10))
        info["texture"] = round(amount, 1)
        # fibres: low-frequency blotches plus fine grain
        blotch = cv2.resize(rng.normal(0, 1, (max(2, h // 40), max(2, w // 40))).astype(np.float32),
                            (w, h), interpolation=cv2.INTER_CUBIC)
        grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8)
        paper = paper + (amount * (0.7 * blotch + 0.6 * grain))[:, :, None]
    return paper


def _ink_colour(rng: np.random.Generator) -> np.ndarray:
    """BGR of a pen or pencil: black, dark grey, blue or dark red."""
    kind = rng.choice(["black", "grey", "blue", "red"], p=[0.45, 0.2, 0.25, 0.1])
    dark = rng.uniform(10, 60)
    colours = {
        "black": (dark, dark, dark),
        "grey": (dark + 50, dark + 50, dark + 50),
        "blue": (dark + 110, dark + 30, dark),
        "red": (dark, dark + 10, dark + 110),
    }
    return np.array(colours[str(kind)], np.float32)


def _camera(image: np.ndarray, scale: float, rng: np.random.Generator, info: dict[str, Any],
            effects: dict[str, float], jpeg_quality: int | None = None) -> np.ndarray:
    """float32 BGR picture -> uint8 BGR as a phone would store it: light falloff, defocus,
    sensor noise, JPEG compression."""
    h, w = image.shape[:2]
    if rng.random() < effects["uneven_light"]:
        # light from one side: brightness falls linearly to `low` across the page, plus a vignette
        low = float(rng.uniform(0.45, 0.8))
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (np.cos(angle) * (xs / w - 0.5) + np.sin(angle) * (ys / h - 0.5)) + 0.5
        falloff = 1.0 - (1.0 - low) * np.clip(t, 0, 1)
        r2 = ((xs / w - 0.5) ** 2 + (ys / h - 0.5) ** 2) * 2
        falloff *= 1.0 - 0.25 * r2
        info["uneven_light"] = round(low, 2)
        image = image * falloff[:, :, None]
    if rng.random() < effects["blur"]:
        sigma = float(rng.uniform(0.3, 1.0) * scale)
        info["blur"] = round(sigma, 2)
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    if rng.random() < effects["noise"]:
        sigma = float(rng.uniform(3, 15))
        info["noise"] = round(sigma, 1)
        image = image + rng.normal(0, sigma, image.shape).astype(np.float32)
    out = np.clip(image, 0, 255).round().astype(np.uint8)
    if rng.random() < effects["jpeg"]:
        quality = int(rng.integers(25, 90)) if jpeg_quality is None else jpeg_quality
        info["jpeg"] = quality
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def _compose(coverage: np.ndarray, rng: np.random.Generator, info: dict[str, Any], scale: float,
             effects: dict[str, float] = EFFECTS, jpeg_quality: int | None = None) -> np.ndarray:
    """Ink coverage (h, w) in [0, 1] -> uint8 BGR photo of it on paper."""
    h, w = coverage.shape
    paper = _paper(h, w, rng, info, effects)
    ink = _ink_colour(rng)
    opacity = float(rng.uniform(0.8, 1.0))
    alpha = (coverage * opacity)[:, :, None]
    return _camera(paper * (1 - alpha) + ink * alpha, scale, rng, info, effects, jpeg_quality)


def render_ink(digit28: np.ndarray, rng: np.random.Generator, effects: dict[str, float] = EFFECTS
               ) -> tuple[np.ndarray, dict[str, Any], float]:
    """uint8 (28, 28) MNIST digit -> (float32 (H, W) ink coverage in [0, 1] on the canvas, info,
    canvas px per MNIST px): the digit as the pen left it (size, place, pen, rotation), before
    paper and camera. ``render_photo`` photographs it."""
    h, w = (int(v) for v in rng.integers(100, 401, 2))
    size = int(rng.uniform(0.3, 0.9) * min(h, w))  # the 28x28 field; the digit is 20/28 of it
    scale = size / 28
    size = round(28 * scale)
    info: dict[str, Any] = {"canvas": (h, w)}
    ink = _rotate(_pen(scale, rng, info, effects)(_resize(digit28, scale)), rng, info, 15.0, effects)
    x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
    info["box"] = (x, y, size, size)
    coverage = np.zeros((h, w), np.float32)
    coverage[y : y + size, x : x + size] = ink
    return coverage, info, scale


def render_photo(digit28: np.ndarray, rng: np.random.Generator, effects: dict[str, float] = EFFECTS,
                 jpeg_quality: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """uint8 (28, 28) MNIST digit -> (uint8 (H, W, 3) BGR photo, info).

    ``info`` has ``canvas`` (h, w), ``box`` (x, y, w, h of the digit's 28x28 field on the canvas)
    and one entry per effect applied (its parameter), with effect names from ``EFFECTS``.
    ``effects`` gives each effect's probability (``HARSH``: all of them); ``jpeg_quality`` fixes
    the JPEG quality (random 25-89 otherwise).
    """
    coverage, info, scale = render_ink(digit28, rng, effects)
    return _compose(coverage, rng, info, scale, effects, jpeg_quality), info


def _ink_box(digit28: np.ndarray) -> np.ndarray:
    """The columns of a (28, 28) digit that hold ink (rows kept, so baselines stay aligned)."""
    cols = np.nonzero(digit28.max(axis=0) > 0)[0]
    return digit28[:, cols.min() : cols.max() + 1] if cols.size else digit28


# How far apart people write the digits of a number, in MNIST pixels between the ink of two
# neighbours of ink widths a and b: "clear" leaves a visible gap, "tight" almost none (strokes
# a pen width apart merge in a photo), "touching" overlaps by up to 15% of their mean width.
SPACINGS: dict[str, Callable[[float, float, np.random.Generator], float]] = {
    "clear": lambda a, b, rng: float(rng.uniform(3, 8)),
    "tight": lambda a, b, rng: float(rng.uniform(0.5, 2)),
    "touching": lambda a, b, rng: -float(rng.uniform(0, 0.15)) * (a + b) / 2,
}


def render_number(digits: list[np.ndarray], rng: np.random.Generator, gap: float | None = None,
                  spacing: str | None = None) -> np.ndarray:
    """MNIST digits written on one line, left to right -> uint8 BGR photo of the number.

    ``gap`` is the space between neighbouring digits in MNIST pixels (0 or negative makes them
    touch or overlap); ``spacing`` draws each gap from one of ``SPACINGS`` instead; with
    neither, each gap is random 2-6.
    """
    pieces = [_ink_box(d) for d in digits]
    if spacing is not None:
        gaps = [SPACINGS[spacing](a.shape[1], b.shape[1], rng)
                for a, b in zip(pieces[:-1], pieces[1:], strict=True)]
    else:
        gaps = [float(rng.uniform(2, 6)) if gap is None else gap for _ in pieces[1:]]
    height = int(rng.uniform(40, 110))  # canvas pixels per 28 MNIST pixels
    scale = height / 28
    info: dict[str, Any] = {}
    positions, x = [], 0.0
    for piece, g in zip(pieces, [0.0, *gaps], strict=True):
        x += g
        positions.append(x)
        x += piece.shape[1]
    width = round(x * scale)
    margin = int(rng.uniform(0.3, 1.0) * height)
    line = np.zeros((height, width + 1), np.float32)
    pen = _pen(scale, rng, info)
    for piece, px in zip(pieces, positions, strict=True):
        ink = pen(_resize(piece, scale))
        left = round(px * scale)
        right = min(line.shape[1], left + ink.shape[1])
        line[:, left:right] = np.maximum(line[:, left:right], ink[:, : right - left])
    canvas = np.zeros((height + 2 * margin, line.shape[1] + 2 * margin), np.float32)
    canvas[margin : margin + height, margin : margin + line.shape[1]] = line
    canvas = _rotate(canvas, rng, info, 5.0)
    return _compose(canvas, rng, info, scale)

