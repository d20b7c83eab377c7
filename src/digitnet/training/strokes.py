"""Other writers from MNIST's own strokes: thin each digit to its skeleton, change what a writer
changes, and draw it again with another pen.

MNIST's 250 writers used similar pens and mostly American letter shapes. People who use the
reader write with hairline pens and markers, narrow or wide, and in styles MNIST has few of: the
European 1 with a long flag, the 7 with a bar across its stem, the 4 left open at the top. Each
of those is a change to a digit's *strokes*, so they are made on its skeleton (a 1-pixel
centre line, Zhang-Suen thinning) and the result is redrawn:

- ``skeleton``: the centre line of the ink, bool (n, 28, 28);
- ``flag_ones``, ``bar_sevens``, ``open_fours``: the style changes, on skeletons of those digits;
- ``redraw``: the skeleton drawn with a round pen from hairline (1 px) to marker (about 5 px)
  or a broad nib at an angle, at twice the resolution and averaged down (anti-aliased);
- ``reshape``: narrower or wider writing, then fitted back into MNIST's 20-pixel box with its
  centre of mass centred, as preprocessing fits a photographed digit.

``restyle`` applies them to a random share of a batch. Everything is whole-batch tensor work
(no per-image Python), and randomness comes from the generator passed in (or torch's global
one, which training seeds and checkpoints).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

INK = 0.35  # a pixel at or above this (of white) is ink, for thinning


@dataclass(frozen=True)
class Restyle:
    """How often each change happens, and its range. Shares are of the whole batch, or of the
    digits of one class for the style changes."""

    p_redraw: float = 0.35  # digits redrawn from their skeleton with another pen
    pen: tuple[float, float] = (0.5, 2.0)  # round pen radius in 28x28 pixels: hairline to marker
    p_nib: float = 0.2  # of the redrawn, a broad nib (calligraphic pen) instead of a round one
    nib: tuple[float, float] = (1.0, 2.5)  # the nib's half-length in pixels
    p_reshape: float = 0.5  # of the redrawn, narrower or wider writing
    aspect: tuple[float, float] = (0.5, 1.6)  # width factor, log-uniform in this range
    p_flag: float = 0.4  # of the 1s redrawn, a long flag from the top ...
    flag: tuple[float, float] = (0.3, 0.6)  # ... this long, as a fraction of the height ...
    flag_angle: tuple[float, float] = (25.0, 55.0)  # ... at this angle below the horizontal
    p_foot: float = 0.3  # of the flagged 1s, also a base line
    p_bar: float = 0.4  # of the 7s redrawn, a bar across the stem
    p_open: float = 0.4  # of the 4s redrawn, the top left open


@functools.cache
def _removable() -> tuple[torch.Tensor, torch.Tensor]:
    """For each of the 256 neighbourhoods (bit k set when neighbour P(k+2) is ink, clockwise
    from north), whether Zhang-Suen's first and second passes remove the centre pixel: it has
    2-6 ink neighbours, exactly one 0 -> 1 step around the ring, and an open side."""
    first, second = torch.zeros(256, dtype=torch.bool), torch.zeros(256, dtype=torch.bool)
    for code in range(256):
        p = [(code >> k) & 1 for k in range(8)]  # P2 .. P9
        p2, _, p4, _, p6, _, p8, _ = p
        rises = sum(p[k] == 0 and p[(k + 1) % 8] == 1 for k in range(8))
        if 2 <= sum(p) <= 6 and rises == 1:
            first[code] = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
            second[code] = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return first, second


def _codes(b: torch.Tensor) -> torch.Tensor:
    """(n, H, W) 0/1 uint8 -> each pixel's neighbourhood code (bit k: neighbour P(k+2))."""
    p = F.pad(b, (1, 1, 1, 1))
    h, w = b.shape[-2:]
    ring = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
    code = torch.zeros_like(b)
    for k, (dy, dx) in enumerate(ring):
        code |= p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] << k
    return code


def skeleton(x: torch.Tensor, max_iterations: int = 12) -> torch.Tensor:
    """Zhang-Suen thinning of the ink of (n, 1, H, W) images in [0, 1] -> bool (n, H, W), the
    1-pixel centre line of each stroke. MNIST's strokes are 2-4 pixels wide: 3-5 passes."""
    b = (x[:, 0] >= INK).to(torch.uint8)
    for _ in range(max_iterations):
        changed = False
        for table in _removable():
            remove = b.bool() & table[_codes(b).long()]
            if bool(remove.any()):
                b = b * (~remove).to(torch.uint8)
                changed = True
        if not changed:
            break
    return b.bool()


def extent(s: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Top, bottom, left, right (float, (n,) each) of the ink or skeletons s, bool (n, H, W);
    top > bottom where an image has none."""
    n, h, w = s.shape
    rows, cols = s.any(dim=2), s.any(dim=1)
    ys, xs = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
    big = torch.tensor(1e4)
    top = torch.where(rows, ys, big).amin(1)
    bottom = torch.where(rows, ys, -big).amax(1)
    left = torch.where(cols, xs, big).amin(1)
    right = torch.where(cols, xs, -big).amax(1)
    return top, bottom, left, right


def _mean_column(s: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """(n,) the mean column of each skeleton's pixels on its ``row`` (n,), or the middle of its
    extent where that row is empty."""
    n, h, w = s.shape
    on = s & (torch.arange(h).view(1, -1, 1) == row.round().long().view(-1, 1, 1))
    cols = torch.arange(w, dtype=torch.float32).view(1, 1, -1)
    _, _, left, right = extent(s)
    mean = (on * cols).sum((1, 2)) / on.sum((1, 2)).clamp(min=1)
    return torch.where(on.any((1, 2)), mean, (left + right) / 2)


def _segments(shape: tuple[int, int, int], a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Bool (n, H, W): the pixels within half a pixel of the segment from a to b, (n, 2) each
    as (x, y), one segment per image."""
    n, h, w = shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    p = torch.stack([xs, ys], -1).view(1, h, w, 2)  # (1, H, W, 2)
    a, d = a.view(n, 1, 1, 2), (b - a).view(n, 1, 1, 2)
    t = (((p - a) * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-6)).clamp(0, 1)  # (n, H, W)
    return ((a + t.unsqueeze(-1) * d - p).norm(dim=-1) <= 0.55)


def _uniform(n: int, r: tuple[float, float], g: torch.Generator | None) -> torch.Tensor:
    return r[0] + (r[1] - r[0]) * torch.rand(n, generator=g)


def flag_ones(s: torch.Tensor, cfg: Restyle, g: torch.Generator | None) -> torch.Tensor:
    """Skeletons of 1s (n, H, W) with a long up-stroke from the top of the stem down to the
    left (the European 1), and for some a base line."""
    n, h, w = s.shape
    top, bottom, _, _ = extent(s)
    height = (bottom - top).clamp(min=1)
    start = torch.stack([_mean_column(s, top), top], 1)  # (n, 2) as (x, y): the stem's top
    angle = _uniform(n, cfg.flag_angle, g) * math.pi / 180
    length = _uniform(n, cfg.flag, g) * height
    end = start + torch.stack([-length * torch.cos(angle), length * torch.sin(angle)], 1)
    out = s | _segments(s.shape, start, end)
    foot = torch.rand(n, generator=g) < cfg.p_foot
    if foot.any():
        half, y = 0.25 * height[foot], bottom[foot]
        x = _mean_column(s[foot], y)
        out[foot] |= _segments((int(foot.sum()), h, w), torch.stack([x - half, y], 1),
                               torch.stack([x + half, y], 1))
    return out


def bar_sevens(s: torch.Tensor, cfg: Restyle, g: torch.Generator | None) -> torch.Tensor:
    """Skeletons of 7s (n, H, W) with a short bar across the stem about half way down."""
    n, h, w = s.shape
    top, bottom, left, right = extent(s)
    row = (top + _uniform(n, (0.45, 0.62), g) * (bottom - top)).round().clamp(0, h - 1)
    stem = _mean_column(s, row)  # the stem's column on that row (the mean if it crosses twice)
    half = _uniform(n, (0.18, 0.35), g) * (right - left).clamp(min=4)
    tilt = _uniform(n, (-1.0, 1.0), g)
    return s | _segments(s.shape, torch.stack([stem - half, row + tilt], 1),
                         torch.stack([stem + half, row - tilt], 1))


def open_fours(s: torch.Tensor, cfg: Restyle, g: torch.Generator | None) -> torch.Tensor:
    """Skeletons of 4s (n, H, W) whose left stroke starts lower than the stem: the top of a
    closed 4 (where the left stroke meets the stem) is cut away left of the stem."""
    n, h, w = s.shape
    top, bottom, _, _ = extent(s)
    # the stem is the column (right half) with the most skeleton pixels
    counts = s.sum(1).float()  # (n, W)
    counts[:, : w // 3] = -1
    stem = counts.argmax(1).float()
    cut = top + _uniform(n, (0.15, 0.35), g) * (bottom - top)
    ys = torch.arange(h, dtype=torch.float32).view(1, -1, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, -1)
    gone = (ys < cut.view(-1, 1, 1)) & (xs < stem.view(-1, 1, 1) - 1.5)
    return s & ~gone


def _dilate(x: torch.Tensor, cross: bool) -> torch.Tensor:
    """One step of grey dilation of (n, 1, H, W) by a 3x3 cross or square."""
    p = F.pad(x, (1, 1, 1, 1))
    h, w = x.shape[-2:]
    up, down = p[..., :-2, 1:-1], p[..., 2:, 1:-1]
    lft, rgt = p[..., 1:-1, :-2], p[..., 1:-1, 2:]
    out = torch.maximum(torch.maximum(x, torch.maximum(up, down)), torch.maximum(lft, rgt))
    if cross:
        return out
    corners = torch.maximum(torch.maximum(p[..., :-2, :-2], p[..., :-2, 2:]),
                            torch.maximum(p[..., 2:, :-2], p[..., 2:, 2:]))
    return torch.maximum(out, corners[..., :h, :w])


def _round_pen(big: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Each image of (n, 1, H, W) dilated ``steps[i]`` times, alternating cross and square so
    the pen is round (an octagon)."""
    out = big
    for k in range(int(steps.max()) if len(steps) else 0):
        grown = _dilate(out, cross=k % 2 == 0)
        out = torch.where((steps > k).view(-1, 1, 1, 1), grown, out)
    return out


def _nib(big: torch.Tensor, half: int, angle: float) -> torch.Tensor:
    """(n, 1, H, W) drawn with a flat nib: the maximum over shifts along a line at ``angle``."""
    out = big
    h, w = big.shape[-2:]
    p = F.pad(big, (half, half, half, half))
    for t in range(-half, half + 1):
        dx, dy = round(t * math.cos(angle)), round(t * math.sin(angle))
        out = torch.maximum(out, p[..., half + dy : half + dy + h, half + dx : half + dx + w])
    return out


def redraw(s: torch.Tensor, cfg: Restyle, g: torch.Generator | None) -> torch.Tensor:
    """Skeletons bool (n, H, W) drawn with a new pen -> (n, 1, H, W) ink in [0, 1].

    The skeleton is drawn at twice the resolution (a 2-pixel line there, 1 pixel here), widened
    there by the pen, then averaged back down, which anti-aliases the edges."""
    n = len(s)
    big = F.interpolate(s.float().unsqueeze(1), scale_factor=2, mode="nearest")  # (n, 1, 2H, 2W)
    radius = _uniform(n, cfg.pen, g)  # 28x28 pixels; each step at 2x adds half a pixel
    steps = ((radius - 0.5) * 2).round().clamp(min=0).long()
    out = _round_pen(big, steps)
    nib = torch.rand(n, generator=g) < cfg.p_nib
    if nib.any():
        half = int(round(2 * float(_uniform(1, cfg.nib, g))))
        angle = float(_uniform(1, (0.0, math.pi), g))
        out[nib] = _nib(_round_pen(big[nib], torch.ones(int(nib.sum()), dtype=torch.long)), half, angle)
    return F.avg_pool2d(out, 2)


def fit_box(x: torch.Tensor, aspect: torch.Tensor | None = None) -> torch.Tensor:
    """(n, 1, 28, 28) ink, its width first multiplied by ``aspect`` (n,) -> scaled so the ink's
    longer side is 20 pixels and moved so its centre of mass is the centre, as MNIST's digits
    (and preprocessed photos) are."""
    n = len(x)
    aspect = torch.ones(n) if aspect is None else aspect
    ink = x[:, 0] > 0.1
    top, bottom, left, right = extent(ink)
    height = (bottom - top + 1).clamp(min=1)
    width = ((right - left + 1) * aspect).clamp(min=1)
    zoom = 20.0 / torch.maximum(height, width)  # output pixels per input pixel
    sx, sy = zoom * aspect, zoom
    mass = x[:, 0].sum((1, 2)).clamp(min=1e-6)
    coords = torch.arange(28, dtype=x.dtype)
    cy = (x[:, 0].sum(2) * coords).sum(1) / mass  # centre of mass, input pixels
    cx = (x[:, 0].sum(1) * coords).sum(1) / mass
    # output pixel u samples input pixel cx + (u - 14) / sx (centre of mass to 14, as
    # centre_in_field); in grid units, where pixel p sits at (p + 0.5) / 14 - 1:
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / sx, 1 / sy
    theta[:, 0, 2] = (cx + 0.5 - 0.5 / sx) / 14 - 1
    theta[:, 1, 2] = (cy + 0.5 - 0.5 / sy) / 14 - 1
    grid = F.affine_grid(theta.to(x.dtype), [n, 1, 28, 28], align_corners=False)
    return stretch(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False))


def stretch(x: torch.Tensor) -> torch.Tensor:
    """Scale each image of (n, 1, H, W) so the 60th percentile of its ink is white, as
    preprocessing does (``vision.imaging.fit_box``): a hairline is as white as a marker."""
    flat = x.flatten(1)
    values = flat.sort(dim=1, descending=True).values  # (n, H*W)
    ink = (flat > 0.1 * flat.amax(1, keepdim=True)).sum(1)  # (n,)
    level = values.gather(1, (0.4 * ink).long().clamp(max=flat.shape[1] - 1).view(-1, 1))
    return (x / level.clamp(min=1e-3).view(-1, 1, 1, 1)).clamp(0, 1)


def restyle(x: torch.Tensor, y: torch.Tensor | None, cfg: Restyle,
            g: torch.Generator | None = None, skeletons: torch.Tensor | None = None) -> torch.Tensor:
    """A batch (n, 1, 28, 28) of MNIST-style digits (labels ``y``, (n,), or None: then no style
    changes that depend on the digit) with a random share redrawn as other writers write.
    ``skeletons``: ``skeleton(x)`` when it is known (bool (n, 28, 28)): thinning is half the
    work, and a digit seen every epoch has the same skeleton each time."""
    if not cfg.p_redraw:  # off: not even a random draw, so the other effects' streams stay as they were
        return x
    n = len(x)
    pick = torch.rand(n, generator=g) < cfg.p_redraw
    if y is not None:
        pick &= y < 10  # never a "not a digit" image: it has no digit's strokes
    if not pick.any():
        return x
    s = skeleton(x[pick]) if skeletons is None else skeletons[pick]  # a copy: changed below
    if y is not None:
        labels = y[pick].cpu()
        for digit, p, change in ((1, cfg.p_flag, flag_ones), (7, cfg.p_bar, bar_sevens),
                                 (4, cfg.p_open, open_fours)):
            which = (labels == digit) & (torch.rand(len(labels), generator=g) < p)
            if which.any():
                s[which] = change(s[which], cfg, g)
    ink = redraw(s, cfg, g)
    reshape = torch.rand(len(ink), generator=g) < cfg.p_reshape
    lo, hi = math.log(cfg.aspect[0]), math.log(cfg.aspect[1])
    aspect = torch.where(reshape, torch.exp(_uniform(len(ink), (lo, hi), g)), torch.ones(len(ink)))
    out = x.clone()
    out[pick] = fit_box(ink, aspect).to(x.dtype)
    return out
