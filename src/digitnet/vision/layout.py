"""How many digits an image holds side by side: one (``predict``'s job) or a number (``read``'s).

Judged on the ink mask preprocessing already made: the pieces of ink at least half as tall
as the tallest, with pieces that share their columns merged (the strokes
of one digit), counted left to right; a piece over twice as wide as tall counts as several.
"""

from __future__ import annotations

import numpy as np

from digitnet.vision import imaging

MIN_HEIGHT = 0.5  # smaller pieces are dots, dashes, dirt or parts of a digit
MERGE_OVERLAP = 0.3  # pieces sharing this fraction of the narrower one's columns are one digit
DIGIT_ASPECT = 0.8  # width / height of a typical digit (MNIST's median)
# 99% of MNIST digits are narrower than 1.45 heights, but a wide 0 or 5 drawn in a photo
# reaches 1.9: only a piece over 2 heights wide surely holds several (touching) digits.
SEVERAL_ASPECT = 2.0


def _spans(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """(x0, x1, height) of each tall enough piece of ink, left to right."""
    stats = imaging.pieces(mask)[1]
    if len(stats) <= 1:
        return []
    boxes = stats[1:, :4]  # (pieces, 4): x, y, w, h
    tall = boxes[:, 3] >= MIN_HEIGHT * boxes[:, 3].max()
    return sorted((int(x), int(x + w), int(h)) for x, _, w, h in boxes[tall])


def _merged(spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    merged: list[tuple[int, int, int]] = []
    for x0, x1, h in spans:
        if merged:
            a0, a1, ah = merged[-1]
            if min(a1, x1) - max(a0, x0) >= MERGE_OVERLAP * min(a1 - a0, x1 - x0):
                merged[-1] = (min(a0, x0), max(a1, x1), max(ah, h))
                continue
        merged.append((x0, x1, h))
    return merged


def count_digits(mask: np.ndarray) -> int:
    """How many digits side by side a bool (H, W) ink mask seems to hold (0 when it has no ink)."""
    count = 0
    for x0, x1, h in _merged(_spans(mask)):
        aspect = (x1 - x0) / h
        count += max(2, round(aspect / DIGIT_ASPECT)) if aspect > SEVERAL_ASPECT else 1
    return count
