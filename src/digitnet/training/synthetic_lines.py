"""Synthetic lines of handwritten digits, for training the line reader: MNIST training digits
written side by side the way people write numbers.

Per line: 1 to 12 digits, half of them redrawn as other writers write (``strokes``); a spacing
mostly of one kind (wide, clear, tight, or touching and overlapping by up to a quarter of a
digit's width), a slant, a pen (thicker or thinner strokes); per digit a slightly different
size and a baseline that drifts. Some lines get a mark that is not a digit (an underline, a
dot, a dash, a scribble) and some are only such marks (letters, scribbles, shapes from
``negatives``), to be read as no digit at all. Then the whole line is turned a little,
sometimes blurred, and goes through ``to_line``, the same rule that prepares a photo's line.
Every random choice comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np
import torch

from digitnet.preprocess import input_tensor
from digitnet.training import negatives
from digitnet.training.strokes import Restyle, restyle, skeleton
from digitnet.vision.numbers import LINE_HEIGHT, to_line

SCALE = 2  # canvas pixels per MNIST pixel: room for pens a fraction of a stroke wider or thinner
# Gap between neighbouring digits in MNIST pixels, given their mean ink width: (share, draw).
GAPS: dict[str, tuple[float, Callable[[float, np.random.Generator], float]]] = {
    "wide": (0.15, lambda w, rng: rng.uniform(6, 14)),
    "clear": (0.25, lambda w, rng: rng.uniform(2, 6)),
    "tight": (0.25, lambda w, rng: rng.uniform(0, 2)),
    "touching": (0.35, lambda w, rng: -rng.uniform(0, 0.25) * w),
}
SAME_SPACING = 0.8  # the share of a line's gaps of its main kind; people are fairly consistent
P_MARK = 0.3  # lines with one mark that is not a digit
P_JUNK = 0.03  # lines of only non-digits (letters, scribbles, shapes), read as nothing
LENGTHS = (1, 12)
# Half of the digits drawn again with other pens and shapes: the line reader meets other
# writers' digits touching each other, where cutting them apart is no help.
LINE_STYLE = Restyle(p_redraw=0.5)
PLAIN = Restyle(p_redraw=0.0)  # the digits as MNIST's writers wrote them


def _digit(d28: np.ndarray, size: float, slant: float) -> np.ndarray:
    """uint8 (28, 28) digit -> float32 coverage ``size`` times larger, slanted, cropped to its
    ink columns (rows kept, so the baseline stays where the writer put it)."""
    side = round(28 * size)
    ink = np.clip(cv2.resize(d28.astype(np.float32) / 255.0, (side, side),
                             interpolation=cv2.INTER_CUBIC), 0, 1)
    if slant:
        extra = int(np.ceil(abs(slant) * side))
        shear = np.float32([[1, slant, extra / 2 - slant * side / 2], [0, 1, 0]])
        ink = cv2.warpAffine(ink, shear, (side + extra, side), flags=cv2.INTER_LINEAR)
    cols = np.flatnonzero(ink.max(axis=0) > 0.05)
    return ink[:, cols.min() : cols.max() + 1] if cols.size else ink


def _gaps(widths: list[int], rng: np.random.Generator) -> list[float]:
    kinds = list(GAPS)
    shares = np.array([GAPS[k][0] for k in kinds])
    main = kinds[rng.choice(len(kinds), p=shares)]
    gaps = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        kind = main if rng.random() < SAME_SPACING else kinds[rng.choice(len(kinds), p=shares)]
        gap = GAPS[kind][1]((a + b) / 2, rng)
        gaps.append(gap if kind == "touching" else gap * SCALE)  # widths are canvas pixels already
    return gaps


def _mark(canvas: np.ndarray, rng: np.random.Generator, middle: int, x0: int, x1: int) -> None:
    """Draw one mark that is not a digit near the digits (which span columns x0..x1)."""
    size = 28 * SCALE
    width = int(rng.integers(2, 5))
    kind = rng.integers(4)
    if kind == 0:  # an underline, straight or a little crooked
        y = int(middle + size * rng.uniform(0.35, 0.6))
        a, b = int(x0 + rng.uniform(-10, 10)), int(x1 + rng.uniform(-10, 10))
        cv2.line(canvas, (a, y), (b, y + int(rng.uniform(-4, 4))), 1.0, width, cv2.LINE_AA)
    elif kind == 1:  # a dot or speck, beside or among the digits
        x = int(rng.choice([x0 - rng.uniform(8, 20), x1 + rng.uniform(8, 20), rng.uniform(x0, x1)]))
        cv2.circle(canvas, (x, int(middle + rng.uniform(-0.5, 0.5) * size)), width, 1.0, -1, cv2.LINE_AA)
    elif kind == 2:  # a dash before or after the number
        x = int(x1 + rng.uniform(10, 25)) if rng.random() < 0.5 else int(x0 - rng.uniform(30, 45))
        y = int(middle + rng.uniform(-0.2, 0.2) * size)
        cv2.line(canvas, (x, y), (x + int(rng.uniform(12, 25)), y), 1.0, width, cv2.LINE_AA)
    else:  # a small scribble before or after
        x = x1 + rng.uniform(15, 30) if rng.random() < 0.5 else x0 - rng.uniform(40, 60)
        y = middle + rng.uniform(-0.4, 0.4) * size
        points = np.stack([x + rng.uniform(0, 25, 6), y + rng.uniform(-12, 12, 6)], 1)
        cv2.polylines(canvas, [points.astype(np.int32)], False, 1.0, max(2, width - 1), cv2.LINE_AA)


def _junk(rng: np.random.Generator) -> list[np.ndarray]:
    """1-3 non-digits (letters, scribbles, shapes) as coverage pieces of a digit's height."""
    draw = [negatives.glyph, negatives.scribble, negatives.shape]
    pieces = []
    for _ in range(int(rng.integers(1, 4))):
        ink = np.asarray(draw[int(rng.integers(len(draw)))](rng), np.float32)
        ys, xs = np.nonzero(ink > 0.1 * max(float(ink.max()), 1e-6))
        if ys.size:
            crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
            scale = 20 * SCALE / crop.shape[0]
            size = (max(1, round(crop.shape[1] * scale)), 20 * SCALE)
            piece = np.zeros((28 * SCALE, size[0]), np.float32)
            piece[4 * SCALE : 24 * SCALE] = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            pieces.append(np.clip(piece, 0, 1))
    return pieces


def compose(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """uint8 (28, 28) MNIST digits, left to right -> float32 ink coverage (h, w) of the line."""
    slant = float(rng.uniform(-0.35, 0.35)) if rng.random() < 0.7 else 0.0
    pieces = [_digit(d, SCALE * rng.uniform(0.85, 1.15), slant) for d in digits]
    gaps = [0.0, *_gaps([p.shape[1] for p in pieces], rng)]
    size = 28 * SCALE
    margin = 2 * size  # room for marks beside the number
    width = int(sum(p.shape[1] for p in pieces) + sum(max(0.0, g) for g in gaps)) + 2 * margin
    # tall enough for the drift, marks below and the rotation of a long line
    height = int(2 * size + 0.1 * width)
    canvas = np.zeros((height, width), np.float32)
    middle, x, drift = height // 2, float(margin), 0.0
    for piece, gap in zip(pieces, gaps, strict=True):
        x += gap
        drift = float(np.clip(drift + rng.normal(0, 1.5), -6, 6))  # the baseline wanders
        top, left = int(middle - piece.shape[0] / 2 + drift), round(x)
        window = canvas[top : top + piece.shape[0], left : left + piece.shape[1]]
        np.maximum(window, piece[: window.shape[0], : window.shape[1]], out=window)
        x += piece.shape[1]
    if rng.random() < P_MARK:
        _mark(canvas, rng, middle, margin, int(x))
    # the rest works on the ink and a margin for the rotation and the pen: a third of the size
    rows, cols = np.flatnonzero(canvas.any(axis=1)), np.flatnonzero(canvas.any(axis=0))
    pad = size // 2 + int(0.05 * (cols[-1] - cols[0]))
    canvas = np.pad(canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], pad)
    pen = rng.random()
    if pen < 0.2:
        k = int(rng.integers(2, 5))
        canvas = cv2.dilate(canvas, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    elif pen < 0.35:
        canvas = cv2.erode(canvas, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2, 2)))
    if rng.random() < 0.7:
        h, w = canvas.shape
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-5, 5)), 1.0)
        canvas = cv2.warpAffine(canvas, turn, (w, h), flags=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(0.5, 1.5)))
    return canvas


def typeset_digits(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digits ``labels`` set in one print typeface (one of those ``negatives`` sets its
    letters in), each as an MNIST-style uint8 (28, 28) picture, as a printed number's digits are
    read: a line of them goes through ``compose`` as a handwritten one does."""
    font, size = str(rng.choice(negatives.TRAIN_FONTS)), int(rng.integers(*negatives.GLYPH_SIZES))
    return np.stack([negatives.to_field(np.asarray(negatives.typeset(str(int(d)), font, size), np.float32))
                     for d in labels])


def junk_line(rng: np.random.Generator) -> np.ndarray:
    """A line of 1-3 non-digits side by side: float32 coverage, to be read as no digit."""
    pieces = _junk(rng)
    gap = np.zeros((28 * SCALE, int(rng.integers(4, 20))), np.float32)
    parts = [p for piece in pieces for p in (piece, gap)]
    return np.concatenate(parts[:-1] or [np.zeros((28 * SCALE, 8), np.float32)], axis=1)


def make_line(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, typeset: float = 0.0,
              crisp: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One training line: uint8 (32, W) as the reader sees it, and its digit labels. A share
    ``typeset`` of the lines are printed (``typeset_digits``) instead of handwritten, and a share
    ``crisp`` of them has its ink cut to two levels at half coverage, as a drawing canvas, a
    scanner's threshold or a screenshot of typed digits gives it. (No draw for either at 0: the
    validation lines stay as they were.)"""
    if rng.random() < P_JUNK:
        coverage, labels = junk_line(rng), labels[:0]
    else:
        if typeset and rng.random() < typeset:
            digits = typeset_digits(labels, rng)
        coverage = compose(list(digits), rng)
        if crisp and rng.random() < crisp:
            coverage = (coverage >= 0.5).astype(np.float32)
    line = to_line(coverage if coverage.max() > 0 else np.ones((1, 1), np.float32))
    if rng.random() < 0.3:  # grain on the strokes: what noise leaves after a photo's threshold
        strokes = line > 0
        grain = rng.normal(0, rng.uniform(5, 25), line.shape) * strokes
        line = np.clip(line + grain, 0, 255).astype(np.uint8)
    return line, labels


def skeletons(x: np.ndarray, chunk: int = 4096) -> torch.Tensor:
    """``strokes.skeleton`` of uint8 (n, 28, 28) digits, bool (n, 28, 28): thinned once, for
    every epoch's redrawing (a few seconds for MNIST's training digits)."""
    return torch.cat([skeleton(input_tensor(x[i : i + chunk])) for i in range(0, len(x), chunk)])


def restyled(x: np.ndarray, y: np.ndarray, index: np.ndarray, rng: np.random.Generator,
             style: Restyle = LINE_STYLE, thinned: torch.Tensor | None = None) -> np.ndarray:
    """The digits ``x[index]`` (uint8 (k, 28, 28)), a share of them redrawn as other writers
    write (other pens, narrow and wide, the flagged 1, the barred 7, the open 4), uint8.
    ``thinned``: ``skeletons(x)``, if made already (the same lines, faster)."""
    if not style.p_redraw:  # plain: no draw from rng, so the lines are what they always were
        return x[index]
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    known = None if thinned is None else thinned[torch.from_numpy(index)]
    out = restyle(input_tensor(x[index]), torch.from_numpy(y[index]).long(), style, g, known)
    return (out[:, 0] * 255).round().to(torch.uint8).numpy()


def epoch_lines(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's lines: indices 0..n-1 in random order, cut into groups of 1-12."""
    order = rng.permutation(n)
    cuts = np.cumsum(rng.integers(LENGTHS[0], LENGTHS[1] + 1, n))
    return np.split(order, cuts[cuts < n])


def line_batches(x: np.ndarray, y: np.ndarray, groups: list[np.ndarray], batch_size: int,
                 rng: np.random.Generator, window: int = 8, style: Restyle = LINE_STYLE,
                 thinned: torch.Tensor | None = None, typeset: float = 0.0, crisp: float = 0.0,
                 ) -> Iterator[tuple[np.ndarray, list[np.ndarray], list[int]]]:
    """Batches of the lines written with the digits ``x[g]`` (uint8 (28, 28), labels ``y[g]``)
    of each group ``g``: uint8 (B, 32, W) lines padded with black on the right (read as blanks),
    their label arrays and their own widths; ceil(len(groups) / batch_size) batches.

    Lines are made ``window`` batches at a time and batched by width, so padding costs little
    (over half of the columns were padding in random batches); the batches of a window come
    in random order. ``thinned``: ``skeletons(x)``, to thin each digit once rather than every
    epoch; ``typeset`` and ``crisp``: the shares of printed lines and of lines with two-level
    ink (``make_line``)."""
    for start in range(0, len(groups), batch_size * window):
        chunk = groups[start : start + batch_size * window]
        styled = restyled(x, y, np.concatenate(chunk), rng, style, thinned)  # uint8 (k, 28, 28)
        ends = np.cumsum([len(g) for g in chunk])
        made = [make_line(styled[end - len(g) : end], y[g], rng, typeset, crisp)
                for g, end in zip(chunk, ends, strict=True)]
        made.sort(key=lambda m: m[0].shape[1])
        batches = [made[i : i + batch_size] for i in range(0, len(made), batch_size)]
        for k in rng.permutation(len(batches)):
            widths = [line.shape[1] for line, _ in batches[k]]
            lines = np.zeros((len(widths), LINE_HEIGHT, max(widths)), np.uint8)
            for i, (line, _) in enumerate(batches[k]):
                lines[i, :, : line.shape[1]] = line
            yield lines, [labels for _, labels in batches[k]], widths
