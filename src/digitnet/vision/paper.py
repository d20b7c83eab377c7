"""The paper under the ink: copies at other scales, the ink's polarity, and the ground (the
picture without its ink) that ``white_on_black`` removes, for photos, scans and drawings.

Every grey level here is a whole number computed with whole numbers (block sums, minima and
maxima, medians, counts, least squares solved by Cramer's rule), so the web page's
reader/imaging.js repeats it to the byte (``imaging.PREPROCESS_VERSION``).

The ground is a plane fitted to the paper around each pixel of a small copy. A median as wide as
the picture (the earlier rule) could not follow light that falls off towards a photo's corners,
and a dim corner became ink; a plane fitted only to nearby paper could not see past a thick
digit that fills a small scan, and faded it. So the paper's pixels are told from the ink's by a
grey opening (what rises above it by more than the paper's own noise is ink), the plane is fitted
to those alone over a window twice the opening's width, and goes at most a little above or below
the paper it was fitted to (without that bound it overshot under thick ink).
"""

from __future__ import annotations

import cv2
import numpy as np

# The ink's polarity is judged on a subsample whose shorter side, the one a digit or a line of
# digits spans, is at most this; the ground is fitted on a copy at most this across (light
# varies slowly).
POLARITY_SIDE = 48
PAPER_SIDE = 48
# The opening that tells paper from ink is this fraction of the copy's shorter side wide (in
# tenths): wider than any stroke, as a digit is at most as tall as the short side and its
# strokes about a tenth of its height.
OPENING_TENTHS = 3
# A pixel is paper when it rises above the opening by at most max(8, 3 sigma), sigma the
# paper's noise as 1.4826 median absolute deviations (so the rule reads 44478 / 10000 MADs).
PAPER_RISE = 8
NOISE_MADS = 44_478  # 3 * 1.4826, in ten-thousandths
# With less than 1/20 of the copy paper (a picture that is nearly all ink), the opening is the ground.
MIN_PAPER_PARTS = 20
# The plane stays within this many grey levels of the lowest and highest paper it was fitted to:
# enough to follow light falling off into a corner (the opening takes a corner's paper for ink),
# too little to fade a thick stroke that fills a small scan.
PAPER_MARGIN = 16
# The slopes' ridge, 1/1000 of the paper's count times (window / 2)^2: where the paper lies on
# one side of a pixel only, the plane leans towards flat instead of extrapolating.
RIDGE_PARTS = 1000


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def block_mean(gray: np.ndarray, factor: int) -> np.ndarray:
    """uint8 (H, W) -> uint8 (ceil(H/f), ceil(W/f)): the mean of each f x f block (the blocks
    on the right and bottom edges may be smaller), rounded half up. A whole factor keeps the
    arithmetic exact; averaging, unlike subsampling, keeps every pixel's ink. Sums block rows
    first, so a picture at the pixel limit needs no full-size copy in wide integers."""
    if factor == 1:
        return gray
    h, w = gray.shape
    # int32 is exact: a block sums at most 255 f^2, under 2^31 for any factor a picture allows
    rows = np.add.reduceat(gray, np.arange(0, h, factor), axis=0, dtype=np.int32)  # (H/f, W)
    sums = np.add.reduceat(rows, np.arange(0, w, factor), axis=1)  # (H/f, W/f)
    counts = (np.minimum(factor, h - factor * np.arange(sums.shape[0]))[:, None]
              * np.minimum(factor, w - factor * np.arange(sums.shape[1]))[None, :])
    return ((sums + counts // 2) // counts).astype(np.uint8)


def shrink(gray: np.ndarray, side: int, edge=max) -> tuple[np.ndarray, int]:
    """``block_mean`` by the smallest whole factor that brings the longer (``edge=min``:
    shorter) side to at most ``side`` px: (copy, factor)."""
    factor = max(1, ceil_div(edge(gray.shape), side))
    return block_mean(gray, factor), factor


def _linear_taps(size: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps from a copy ``factor`` times smaller to ``size`` pixels, pixel centres
    aligned: output i sits at (2i + 1 - f) / 2f copy pixels. (first, second, weight of the
    second in 2f-ths)."""
    at = 2 * np.arange(size, dtype=np.int64) + 1 - factor
    first = at // (2 * factor)
    weight = at - first * 2 * factor
    return first, first + 1, weight


def upsample(small: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (h, w) -> uint8 ``shape``: bilinear, ``factor`` times larger, edges replicated,
    in whole numbers (weights in 2f-ths), rounded half up."""
    if factor == 1:
        return small[: shape[0], : shape[1]]
    h, w = small.shape
    y0, y1, wy = _linear_taps(shape[0], factor)
    x0, x1, wx = _linear_taps(shape[1], factor)
    f2 = 2 * factor
    # int32 is exact: at most 255 (2f)^2, under 2^31 for any factor a picture allows
    g = small.astype(np.int32)
    wy, wx = wy.astype(np.int32), wx.astype(np.int32)
    rows = g[np.clip(y0, 0, h - 1)] * (f2 - wy)[:, None] + g[np.clip(y1, 0, h - 1)] * wy[:, None]
    out = rows[:, np.clip(x0, 0, w - 1)] * (f2 - wx) + rows[:, np.clip(x1, 0, w - 1)] * wx
    return ((out + f2 * f2 // 2) // (f2 * f2)).astype(np.uint8)


def is_dark_on_light(gray: np.ndarray) -> bool:
    """True if the ink is darker than the paper around it.

    The paper is the local median over a window as wide as the picture's short side, hence
    wider than the digit (ink covers less than half of it), so a light gradient across the
    page does not matter. The ink is whichever side of it reaches further: the sum of the
    darkest 0.1% below the paper against the brightest 0.1% above it. A thin digit may cover
    only a fraction of a percent of a photo, and paper texture spreads wide but shallow, so only
    the extremes tell them apart; a tie (a pattern of dots) goes to the usual dark ink.

    Judged on every n-th pixel, at most ``POLARITY_SIDE`` across the shorter side: unlike an
    averaged copy, a subsample keeps thin strokes at full strength.
    """
    step = ceil_div(min(gray.shape), POLARITY_SIDE)
    small = np.ascontiguousarray(gray[::step, ::step])
    k = max(3, min(small.shape) - 1) | 1
    diff = np.sort((small.astype(np.int32) - cv2.medianBlur(small, k)).ravel())
    extreme = ceil_div(diff.size, 1000)
    return bool(-diff[:extreme].sum() >= diff[-extreme:].sum())


def _min_filter(a: np.ndarray, k: int) -> np.ndarray:
    """The minimum over the k x k window (k odd) clipped to the picture, same dtype."""
    return cv2.erode(a, np.ones((k, k), np.uint8), borderType=cv2.BORDER_REPLICATE)


def _max_filter(a: np.ndarray, k: int) -> np.ndarray:
    """The maximum over the k x k window (k odd) clipped to the picture, same dtype."""
    return cv2.dilate(a, np.ones((k, k), np.uint8), borderType=cv2.BORDER_REPLICATE)


def _window_sums(a: np.ndarray, r: int) -> np.ndarray:
    """int64 (..., H, W) -> the sum over the (2r + 1)^2 window clipped to the picture, exactly
    (integral images), for every leading index at once."""
    h, w = a.shape[-2:]
    table = np.zeros((*a.shape[:-2], h + 1, w + 1), np.int64)
    table[..., 1:, 1:] = a.cumsum(-2).cumsum(-1)
    y0, y1 = np.clip(np.arange(h) - r, 0, h)[:, None], np.clip(np.arange(h) + r + 1, 0, h)[:, None]
    x0, x1 = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
    return table[..., y1, x1] - table[..., y0, x1] - table[..., y1, x0] + table[..., y0, x0]


def paper_mask(small: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (h, w) white-on-black copy -> (its grey opening by a k x k square, uint8 0/1 where
    it is surely paper: no more above the opening than the paper's noise, and not next to ink)."""
    opened = _max_filter(_min_filter(small, k), k)
    rise = small.astype(np.int64) - opened  # >= 0: an opening never exceeds the picture
    middle = np.sort(rise.ravel())[(rise.size - 1) // 2]
    mad = int(np.sort(np.abs(rise - middle).ravel())[(rise.size - 1) // 2])
    paper = (rise * 10_000 <= max(PAPER_RISE * 10_000, NOISE_MADS * mad)).astype(np.uint8)
    return opened, _min_filter(paper, 3)  # keep clear of the strokes' soft edges


def _plane_at_each_pixel(values: np.ndarray, paper: np.ndarray, r: int, ridge_scale: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Least squares a + b dx + c dy to the paper's values in the (2r + 1)^2 window around each
    pixel, (dx, dy) relative to it: (numerator, denominator) of a by Cramer's rule, int64 (the
    largest is under 2^56 for a 48 px copy and r = 15). The slopes' diagonal gets the ridge."""
    h, w = values.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    m, v = paper.astype(np.int64), values.astype(np.int64)
    mv = m * v
    s0, sx, sy, sxx, sxy, syy, f0, fx, fy = _window_sums(
        np.stack([m, m * x, m * y, m * x * x, m * x * y, m * y * y, mv, mv * x, mv * y]), r)
    ridge = (s0 * ridge_scale + 2 * RIDGE_PARTS) // (4 * RIDGE_PARTS)
    # the normal equations in coordinates relative to each pixel: symmetric 3x3 @ (a, b, c) = r
    m01, m02 = sx - x * s0, sy - y * s0
    m11 = sxx - 2 * x * sx + x * x * s0 + ridge
    m12 = sxy - x * sy - y * sx + x * y * s0
    m22 = syy - 2 * y * sy + y * y * s0 + ridge
    r0, r1, r2 = f0, fx - x * f0, fy - y * f0
    c00, c01, c02 = m11 * m22 - m12 * m12, m12 * m02 - m01 * m22, m01 * m12 - m11 * m02
    return r0 * c00 + r1 * c01 + r2 * c02, s0 * c00 + m01 * c01 + m02 * c02


def ground(small: np.ndarray) -> np.ndarray:
    """uint8 (h, w) white-on-black copy (shorter side at most ``PAPER_SIDE``) -> uint8 (h, w)
    the paper's level under every pixel: a plane fitted to the paper (``paper_mask``) in the
    window twice the opening's width around it, rounded half up and kept within
    ``PAPER_MARGIN`` of the paper's own levels there; the opening where there is no paper."""
    k = max(3, (OPENING_TENTHS * min(small.shape) + 5) // 10) | 1
    opened, paper = paper_mask(small, k)
    if MIN_PAPER_PARTS * int(paper.sum()) < paper.size:
        return opened
    num, den = _plane_at_each_pixel(small, paper, k, k * k)
    solved = den > 0
    den = np.where(solved, den, 1)
    fit = np.where(solved, (2 * num + den) // (2 * den), opened)
    # near the lowest and highest paper of the window: no overshoot under thick ink
    window = 2 * k + 1
    lo = _min_filter(np.where(paper > 0, small, 255).astype(np.uint8), window).astype(np.int64)
    hi = _max_filter(np.where(paper > 0, small, 0).astype(np.uint8), window).astype(np.int64)
    fit = np.clip(fit, lo - PAPER_MARGIN, hi + PAPER_MARGIN)
    seen = _window_sums(paper.astype(np.int64), k) > 0
    return np.clip(np.where(seen, fit, opened), 0, 255).astype(np.uint8)


def white_on_black(gray: np.ndarray, dark: bool) -> np.ndarray:
    """uint8 (H, W) gray and its polarity -> uint8 (H, W) white ink on black, paper and uneven
    light removed.

    The ground (``ground``) is estimated on a copy at most ``PAPER_SIDE`` px across its shorter
    side (light varies slowly; averaging also quiets the paper's grain) and brought back to full
    size bilinearly. Dark ink is measured relative to the paper under it ((paper - pixel) /
    paper), so the same pen gives the same grey in the bright and the shadowed part of a photo;
    light ink on a dark ground has the ground subtracted.
    """
    inverted = 255 - gray if dark else gray
    small, factor = shrink(inverted, PAPER_SIDE, edge=min)
    level = upsample(ground(small), factor, gray.shape).astype(np.int32)
    rise = np.maximum(inverted.astype(np.int32) - level, 0)
    if not dark:
        return rise.astype(np.uint8)
    paper = np.maximum(255 - level, 16)  # how bright the paper is, per pixel
    return np.minimum((rise * 255 + paper // 2) // paper, 255).astype(np.uint8)
