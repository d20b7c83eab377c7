"""Read a number written on one line: split the ink into digits, left to right, and classify
each one as ``predict`` does.

Digits are the connected pieces of ink, with pieces that overlap horizontally merged (the
two strokes of a broken 5, the dot-free bar of a 4). A piece much wider than a digit of its
height is several touching digits: it is cut where the ink is thinnest (the minimum of the
vertical projection) near the positions an expected digit width predicts; when the
width leaves the count open, the model's confidence in each candidate split decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from digitnet.inference.files import Model
from digitnet.vision import imaging

# Width / height of MNIST test digits: median 0.8, 95% below 1.11, 99% below 1.43. A piece
# up to SINGLE_ASPECT is one digit; past MAX_DIGIT_ASPECT it is several; in between the
# model decides. A digit is taken to be NARROW_ASPECT to WIDE_ASPECT wide when counting.
SINGLE_ASPECT = 0.9
MAX_DIGIT_ASPECT = 1.45
NARROW_ASPECT = 0.55
WIDE_ASPECT = 1.0
# Pieces overlapping horizontally by this fraction of the narrower one are one digit.
MERGE_OVERLAP = 0.5
# Pieces lower than this fraction of the tallest are dots, dashes or dirt, not digits.
MIN_HEIGHT = 0.3
# Bounds on the work one image may cause (each candidate digit is one model input): a number
# of up to MAX_DIGITS digits, MAX_CANDIDATES candidate digits over all splits tried, and
# MAX_MARKS pieces of ink before merging (more is noise or texture, not a number).
MAX_DIGITS = 40
MAX_CANDIDATES = 400
MAX_MARKS = 2000


@dataclass
class DigitReading:
    """One digit: its class, probability, box (x, y, w, h) in input pixels, 28x28 image."""

    digit: int
    probability: float
    box: tuple[int, int, int, int]
    image28: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"digit": self.digit, "probability": self.probability, "box": list(self.box)}


@dataclass
class NumberReading:
    text: str
    digits: list[DigitReading]


@dataclass
class _Piece:
    """A group of ink components: its pixel mask cropped to its columns [x0, x1), whose top row
    is row y0 of the image. Cropped, because a full-image mask per candidate digit made a long
    thin image cost gigabytes (every split of every group held a copy of the whole image)."""

    mask: np.ndarray
    x0: int
    x1: int
    y0: int = 0

    def box(self) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(self.mask)
        return (int(self.x0 + xs.min()), int(self.y0 + ys.min()),
                int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))


def _too_many(what: str, count: int, limit: int) -> imaging.ImageBoundsError:
    return imaging.ImageBoundsError(f"too many {what} ({count}) to read as one number; the limit is "
                                    f"{limit}, crop the image to the number")


def _components(mask: np.ndarray) -> list[_Piece]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count - 1 > MAX_MARKS:  # noise: each piece costs a pass over its box, refuse before
        raise _too_many("separate marks", count - 1, MAX_MARKS)
    pieces = []
    for c in range(1, count):
        x, y, w, h = (int(v) for v in stats[c, :4])
        pieces.append(_Piece(labels[y : y + h, x : x + w] == c, x, x + w, y))
    return sorted(pieces, key=lambda p: p.x0)


def _union(a: _Piece, b: _Piece) -> _Piece:
    """One piece holding the ink of both."""
    y0 = min(a.y0, b.y0)
    y1 = max(a.y0 + a.mask.shape[0], b.y0 + b.mask.shape[0])
    x0, x1 = min(a.x0, b.x0), max(a.x1, b.x1)
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    for p in (a, b):
        mask[p.y0 - y0 : p.y0 - y0 + p.mask.shape[0], p.x0 - x0 : p.x1 - x0] |= p.mask
    return _Piece(mask, x0, x1, y0)


def merge_overlapping(pieces: list[_Piece]) -> list[_Piece]:
    """Merge pieces (sorted by x0) whose column ranges overlap by ``MERGE_OVERLAP`` of the narrower."""
    merged: list[_Piece] = []
    for p in pieces:
        if merged:
            last = merged[-1]
            overlap = min(last.x1, p.x1) - max(last.x0, p.x0)
            if overlap >= MERGE_OVERLAP * min(last.x1 - last.x0, p.x1 - p.x0):
                merged[-1] = _union(last, p)
                continue
        merged.append(p)
    return merged


def cut_columns(profile: np.ndarray, n: int) -> list[int]:
    """Where to cut a run of ``n`` touching digits: for each boundary, the column with the least
    ink (``profile``: ink pixels per column) within a third of a digit of its expected place.

    Needs ``n <= len(profile)``; every cut lies in 1..len - 1, so no part is empty of columns.
    """
    width = len(profile)
    if not 1 <= n <= width:
        raise ValueError(f"cannot cut {width} columns into {n} digits")
    step = width / n
    cuts = []
    for j in range(1, n):
        centre = j * step
        lo = min(width - 1, max(1, int(centre - step / 3)))
        # at least one column: a digit narrower than 3 px leaves a window of none
        hi = max(lo + 1, min(width, int(centre + step / 3) + 1))
        window = profile[lo:hi].astype(np.float64)
        # ties (a flat run of thin ink) go to the column nearest the expected place
        distance = np.abs(np.arange(lo, hi) - centre) / step
        cuts.append(lo + int(np.argmin(window + 1e-3 * distance)))
    return cuts


def split_at(piece: _Piece, n: int) -> list[_Piece]:
    """Cut one piece into ``n`` side by side at its thinnest columns (``n`` = 1: itself)."""
    if n == 1:
        return [piece]
    x, _, w, _ = piece.box()
    left = x - piece.x0
    profile = piece.mask[:, left : left + w].sum(axis=0)
    edges = [left, *(left + c for c in cut_columns(profile, n)), left + w]
    parts = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        part = piece.mask[:, a:b]
        if part.any():
            parts.append(_Piece(part, piece.x0 + a, piece.x0 + b, piece.y0))
    return parts


def digit_counts(piece: _Piece) -> list[int]:
    """How many touching digits a piece may hold, judged by its width in heights.

    Up to ``SINGLE_ASPECT`` it is surely one digit; past ``MAX_DIGIT_ASPECT`` surely more; the
    counts from a wide digit's width (``WIDE_ASPECT``) up to a narrow one's (``NARROW_ASPECT``)
    are all tried, and the model's confidence decides (see ``read_number``).
    """
    _, _, w, h = piece.box()
    aspect = w / h
    if aspect <= SINGLE_ASPECT:
        return [1]
    low = max(1 if aspect <= MAX_DIGIT_ASPECT else 2, int(aspect / WIDE_ASPECT))
    if low > MAX_DIGITS:
        raise _too_many("digits", low, MAX_DIGITS)
    # a digit is at least a column wide, and the count stays bounded however long the piece
    high = min(max(low, 2, round(aspect / NARROW_ASPECT)), MAX_DIGITS, w)
    return list(range(low, max(low, high) + 1))


def segment(mask: np.ndarray) -> list[list[list[_Piece]]]:
    """Ink mask -> per group of touching ink (left to right), the candidate ways to split it."""
    groups = merge_overlapping(_components(mask))
    if not groups:
        return []
    tallest = max(g.box()[3] for g in groups)
    groups = [g for g in groups if g.box()[3] >= MIN_HEIGHT * tallest]
    if len(groups) > MAX_DIGITS:
        raise _too_many("digits", len(groups), MAX_DIGITS)
    counts = [digit_counts(g) for g in groups]
    tried = sum(sum(c) for c in counts)
    if tried > MAX_CANDIDATES:  # each candidate digit is one image through the model
        raise _too_many("candidate digits", tried, MAX_CANDIDATES)
    return [[split_at(g, n) for n in c] for g, c in zip(groups, counts, strict=True)]


def digit_crop(ink: np.ndarray, piece: _Piece) -> tuple[np.ndarray, np.ndarray]:
    """The grey ink of one digit alone (other digits blanked), cropped: (image, mask)."""
    x, y, w, h = piece.box()
    ys = slice(max(0, y - 2), min(ink.shape[0], y + h + 2))  # 2 px: the dilation's reach
    xs = slice(max(0, x - 2), min(ink.shape[1], x + w + 2))
    mask = np.zeros((ys.stop - ys.start, xs.stop - xs.start), bool)
    r0, r1 = max(ys.start, piece.y0), min(ys.stop, piece.y0 + piece.mask.shape[0])
    c0, c1 = max(xs.start, piece.x0), min(xs.stop, piece.x1)
    mask[r0 - ys.start : r1 - ys.start, c0 - xs.start : c1 - xs.start] = \
        piece.mask[r0 - piece.y0 : r1 - piece.y0, c0 - piece.x0 : c1 - piece.x0]
    grown = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return np.where(grown > 0, ink[ys, xs], 0).astype(np.uint8), mask


def read_number(image: np.ndarray, predictor: Model) -> NumberReading:
    """A decoded image of a number on one line -> its digits, left to right.

    Each digit is cropped from the white-on-black ink image and given the same crop, 20 px
    box and centring as ``imaging.to_mnist``. Where a piece of ink may hold several touching
    digits, every candidate split goes to the model and the one with the highest product of
    digit probabilities wins (one confident digit beats two halves unless both halves are
    more convincing together). All candidates go to the model in one batch.
    Raises ImageError("blank") when there is no ink.
    """
    ink = imaging.to_white_on_black(image)
    mask = imaging.ink_mask(ink)
    candidates = segment(mask)
    pieces = [p for group in candidates for split in group for p in split]
    if not pieces:
        raise imaging.ImageError("blank image: no digits found; photograph the number darker or closer",
                                 "blank")
    images = np.stack([imaging.mnist_from_ink(*digit_crop(ink, p)) for p in pieces])  # (N, 28, 28)
    probs = predictor.probabilities(images)  # (N, 10)
    digits, i = [], 0
    for group in candidates:
        best, best_score = [], -np.inf
        for split in group:
            found = [DigitReading(int(probs[i + k].argmax()), round(float(probs[i + k].max()), 6),
                                  p.box(), images[i + k]) for k, p in enumerate(split)]
            i += len(split)
            score = float(np.sum(np.log([max(d.probability, 1e-9) for d in found])))
            if score > best_score:
                best, best_score = found, score
        digits.extend(best)
    return NumberReading("".join(str(d.digit) for d in digits), digits)
