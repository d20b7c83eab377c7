"""Data augmentation on whole batches: ``Augmentation`` (random affine warps plus elastic
distortion) for MNIST itself, and ``WriterAugmentation`` for what differs between MNIST and
people's digits (other writers' shapes, pens, scans, noise, bad crops), which the reader
trains with. Each effect of the latter applies to a random fraction of the batch, so clean
accuracy stays high; effects that dim the ink are followed by the stretch that preprocessing
applies to real images (``restretch``), since the reader always sees preprocessed images.

Everything is one ``F.affine_grid`` + one ``F.grid_sample`` per batch, so it costs about as much
as a single small convolution. Randomness comes from torch's global RNG, which
``seeding.seed_everything`` seeds and checkpoints save, so augmented runs are reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from digitnet.runs.config import TrainConfig
from digitnet.training.strokes import Restyle, extent, fit_box, restyle


@dataclass(frozen=True)
class Augmentation:
    max_shift: float = 2.0 / 14  # fraction of the half-width (grid units): 2 pixels of 28
    max_rotation: float = 10.0  # degrees either way
    max_scale: float = 0.10  # zoom by a factor in [1 - s, 1 + s]
    elastic_alpha: float = 0.03  # peak displacement in grid units (~0.4 pixel) ...
    elastic_grid: int = 4  # ... of a random field on a 4x4 lattice, smoothly upsampled

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return augment(x, self)


def random_affine(n: int, aug: Augmentation, device: torch.device) -> torch.Tensor:
    """(n, 2, 3) affine matrices: rotation, isotropic scale and shift, in grid coordinates."""
    u = torch.rand(n, 4, device=device) * 2 - 1  # (n, 4) uniform in [-1, 1)
    angle = u[:, 0] * math.radians(aug.max_rotation)
    scale = 1 + u[:, 1] * aug.max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = u[:, 2:] * aug.max_shift  # (n, 2)
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                        torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def elastic_field(n: int, size: tuple[int, int], aug: Augmentation,
                  device: torch.device) -> torch.Tensor:
    """(n, H, W, 2) smooth random displacements: coarse noise, bicubically upsampled."""
    coarse = (torch.rand(n, 2, aug.elastic_grid, aug.elastic_grid, device=device) * 2 - 1)
    field = F.interpolate(coarse * aug.elastic_alpha, size=size, mode="bicubic",
                          align_corners=True)  # (n, 2, H, W)
    return field.permute(0, 2, 3, 1)


def augment(x: torch.Tensor, aug: Augmentation | None = None) -> torch.Tensor:
    """A randomly warped copy of the images ``x`` (N, C, H, W); background stays zero."""
    aug = aug or Augmentation()
    n, _, h, w = x.shape
    theta = random_affine(n, aug, x.device).to(x.dtype)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)  # (N, H, W, 2)
    if aug.elastic_alpha:
        grid = grid + elastic_field(n, (h, w), aug, x.device).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class WriterAugmentation:
    """The reader's augmentation: other writers, pens, scans and crops (see ``writers``)."""

    # geometry: every image gets a mild warp, a fraction `p_writer` a strong one (other writers)
    mild_rotation: float = 8.0  # degrees either way
    mild_shift: float = 1.5  # pixels either way
    mild_scale: float = 0.08  # zoom factor in [1 - s, 1 + s]
    p_writer: float = 0.35  # fraction warped like another writer's hand
    rotation: float = 15.0  # degrees either way
    slant: float = 0.35  # shear: x moves by slant * y (tan of the slant angle), either way
    scale: tuple[float, float] = (0.75, 1.15)  # zoom factor (badly cropped or small digits)
    aspect: float = 0.2  # one axis stretched by up to this fraction (narrow or wide writing)
    shift: float = 3.0  # pixels either way (off-centre)
    elastic_alpha: float = 1.2  # peak elastic displacement in pixels ...
    elastic_grid: int = 5  # ... of a random field on a 5x5 lattice, smoothly upsampled
    # pens: thicker (marker) or thinner (fine pen) strokes
    p_thick: float = 0.15
    p_thin: float = 0.15
    # scans and photos
    p_lowres: float = 0.15  # down- then up-sampled ...
    # ... through a square this many pixels wide: at 8 the 20-pixel digit spans 6 cells, as a
    # tiny 8x8 scan does. The reader trained from 10 up took 7% of such scans of its own
    # validation digits for "not a digit" (2% from 11 up).
    lowres_side: tuple[int, int] = (8, 18)
    # ... and of those, a share scanned as a tiny bitmap (``bitmap_scan``): the ink's box on a
    # grid of this many cells each way, every cell the share of its 4x4 black-and-white pixels
    # that are ink (17 grey levels), as UCI's optdigits scans were made. Smooth down-sampling
    # alone never makes the blocks, levels and lost thin strokes of a thresholded bitmap.
    p_bitmap: float = 0.5
    bitmap_cells: tuple[int, int] = (6, 10)
    p_blur: float = 0.1
    blur_sigma: tuple[float, float] = (0.4, 1.2)  # pixels
    p_noise: float = 0.1
    noise_sigma: tuple[float, float] = (0.02, 0.15)  # of full white
    p_blocky: float = 0.3  # of the low-resolution ones, scaled back up without smoothing
    # bad crops: one side of the ink cut off
    p_crop: float = 0.05
    crop_depth: tuple[float, float] = (2.0, 5.0)  # pixels cut from the ink's edge
    # other writers' strokes: hairline to marker pens, narrow and wide writing, the flagged 1,
    # the barred 7, the open 4 (``strokes``), for a fifth of the digits. With these and scans
    # down to 8 px the reader accepts 98.5% of its "other writers" validation digits (95.3%
    # before) and reads 94.6% of them (92.8%); on MNIST test it reads 99.61% (99.73% before).
    restyle: Restyle = field(default_factory=lambda: Restyle(p_redraw=0.2))

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # The effects draw their randomness and build their grids on the CPU (torch's global
        # generator, which checkpoints save): a batch on a GPU goes there and back.
        out = writers(x.cpu(), self, y=None if y is None else y.cpu())
        return out.to(x.device)


def for_run(config: TrainConfig) -> Augmentation | WriterAugmentation | None:
    """What each batch of a run with ``config`` goes through before the step: the reader's
    effects (``config.writers``), MNIST's (``config.augment``), or none."""
    if config.writers:
        return WriterAugmentation()
    return Augmentation() if config.augment else None


def _uniform(n: int, low: float, high: float, g: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def _pick(n: int, p: float, g: torch.Generator | None) -> torch.Tensor:
    """(n, 1, 1, 1) bool: which images an effect with probability p applies to."""
    return (torch.rand(n, generator=g) < p).view(n, 1, 1, 1)


def restretch(x: torch.Tensor) -> torch.Tensor:
    """Scale each image so its brightest ink is white again, as preprocessing does."""
    peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp(min=0.2)
    return (x / peak).clamp(0, 1)


def geometry(x: torch.Tensor, a: WriterAugmentation, g: torch.Generator | None) -> torch.Tensor:
    """Affine warp (rotation, slant, zoom, aspect, shift; mild for most images, strong for a
    fraction) plus elastic distortion for the strong ones: one grid_sample for the batch."""
    n = x.shape[0]
    strong = torch.rand(n, generator=g) < a.p_writer
    rot = torch.where(strong, _uniform(n, -a.rotation, a.rotation, g),
                      _uniform(n, -a.mild_rotation, a.mild_rotation, g)) * math.pi / 180
    shear = torch.where(strong, _uniform(n, -a.slant, a.slant, g), torch.zeros(n))
    zoom = torch.where(strong, _uniform(n, *a.scale, g),
                       _uniform(n, 1 - a.mild_scale, 1 + a.mild_scale, g))
    stretch = torch.where(strong, _uniform(n, -a.aspect, a.aspect, g), torch.zeros(n))
    sx, sy = zoom * (1 + stretch), zoom * (1 - stretch)
    shift_px = torch.where(strong, torch.full((n,), a.shift), torch.full((n,), a.mild_shift))
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * (shift_px / 14).unsqueeze(1)  # grid units
    cos, sin = torch.cos(rot), torch.sin(rot)
    # forward map = rotation @ shear @ scale; grid_sample needs its inverse (output -> input)
    fwd = torch.zeros(n, 2, 2)
    fwd[:, 0, 0], fwd[:, 0, 1] = cos * sx, (cos * shear - sin) * sy
    fwd[:, 1, 0], fwd[:, 1, 1] = sin * sx, (sin * shear + cos) * sy
    inv = torch.linalg.inv(fwd)
    theta = torch.cat([inv, -(inv @ shift.unsqueeze(2))], dim=2)  # (n, 2, 3)
    grid = F.affine_grid(theta, [n, 1, 28, 28], align_corners=False)  # (n, 28, 28, 2)
    alpha = a.elastic_alpha / 14 * strong.float().view(n, 1, 1, 1)
    coarse = torch.rand(n, 2, a.elastic_grid, a.elastic_grid, generator=g) * 2 - 1
    field = F.interpolate(coarse, size=(28, 28), mode="bicubic", align_corners=True)
    grid = grid + alpha.view(n, 1, 1, 1) * field.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def dilate3(x: torch.Tensor) -> torch.Tensor:
    """3x3 grey dilation as two separable maxima of shifted views (several times faster than
    max_pool2d on one-channel images); the outside counts as background (0)."""
    p = F.pad(x, (1, 1, 1, 1))
    rows = torch.maximum(torch.maximum(p[..., :-2, :], p[..., 1:-1, :]), p[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def erode3(x: torch.Tensor) -> torch.Tensor:
    """3x3 grey erosion: dilation of the negative."""
    return -dilate3(-x)


def pen_width(x: torch.Tensor, a: WriterAugmentation, g: torch.Generator | None) -> torch.Tensor:
    """Thicker (marker) or thinner (fine pen) strokes by grey dilation or erosion. Half-pixel
    steps run at 2x resolution (finer than MNIST's pixels); a third of the thick ones get a
    full pixel at 28x28."""
    n = x.shape[0]
    u = torch.rand(n, generator=g)
    thick = torch.nonzero(u < a.p_thick).flatten()
    thin = torch.nonzero((u >= a.p_thick) & (u < a.p_thick + a.p_thin)).flatten()
    full = torch.rand(len(thick), generator=g) < 1 / 3
    out = x.clone()

    def at_2x(images: torch.Tensor, op) -> torch.Tensor:
        big = F.interpolate(images, scale_factor=2, mode="bilinear", align_corners=False)
        return F.avg_pool2d(op(big), 2)  # (k, 1, 28, 28)

    out[thick] = torch.where(full.view(-1, 1, 1, 1), dilate3(x[thick]), at_2x(x[thick], dilate3))
    out[thin] = restretch(at_2x(x[thin], erode3))
    return out


def low_resolution(x: torch.Tensor, a: WriterAugmentation, g: torch.Generator | None) -> torch.Tensor:
    """A coarse scan of a random share of the batch: down- then up-sampled through one random
    size per batch, or, for ``p_bitmap`` of them, scanned as a thresholded bitmap."""
    side = int(torch.randint(a.lowres_side[0], a.lowres_side[1] + 1, (1,), generator=g))
    small = F.interpolate(x, size=(side, side), mode="area")
    if a.p_blocky and float(torch.rand(1, generator=g)) < a.p_blocky:  # enlarged without smoothing
        coarse = restretch(F.interpolate(small, size=(28, 28), mode="nearest"))
    else:
        coarse = restretch(F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False))
    n = x.shape[0]
    chosen = _pick(n, a.p_lowres, g)
    bitmap = chosen.view(n) & (torch.rand(n, generator=g) < a.p_bitmap)
    out = torch.where(chosen, coarse, x)
    if a.p_bitmap and bitmap.any():
        out[bitmap] = bitmap_scan(x[bitmap], a.bitmap_cells, g)
    return out


BITMAP_BLOCK = 4  # black-and-white pixels per cell, each way
# Below this level (of a full cell) an enlarged scan's grey is rim, not ink: at 0.25 the scans
# of training digits have as many ink pixels as the same digits scanned with OpenCV and read by
# the real preprocessing (tests/bench/test_derived_sets.py)
BITMAP_RIM = 0.25


def bitmap_scan(x: torch.Tensor, cells: tuple[int, int], g: torch.Generator | None) -> torch.Tensor:
    """(n, 1, 28, 28) digits -> each as a tiny bitmap scan reads after preprocessing: the ink's
    box scaled (aspect kept) onto ``cells`` x ``cells`` cells of 4x4 pixels (cells drawn per
    image from the range), thresholded at half, each cell's share of ink pixels its grey level,
    then enlarged smoothly, its faint rim dropped, and fitted into MNIST's 20-pixel box as a
    photo is. Images without ink are returned as they are."""
    n = len(x)
    top, bottom, left, right = extent(x[:, 0] > 0.1)
    has_ink = bottom >= top
    side = torch.maximum(bottom - top, right - left) + 1  # the box's longer side, pixels
    # output grid -> input: the square of ``side`` pixels centred on the box (edge coordinates,
    # where pixel p spans [p, p + 1] and sits at (p + 0.5) / 14 - 1 in grid units)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = side / 28
    theta[:, 0, 2] = (left + right + 1) / 28 - 1
    theta[:, 1, 2] = (top + bottom + 1) / 28 - 1
    size = torch.randint(cells[0], cells[1] + 1, (n,), generator=g)
    out = x.clone()
    for c in size.unique().tolist():
        at = torch.nonzero((size == c) & has_ink).flatten()
        if not len(at):
            continue
        pixels = c * BITMAP_BLOCK
        grid = F.affine_grid(theta[at].to(x.dtype), [len(at), 1, pixels, pixels], align_corners=False)
        ink = (F.grid_sample(x[at], grid, mode="bilinear", align_corners=False) >= 0.5).to(x.dtype)
        levels = F.avg_pool2d(ink, BITMAP_BLOCK)  # (k, 1, c, c): 0, 1/16, ... 1
        big = F.interpolate(levels, size=(20, 20), mode="bilinear", align_corners=False)
        # preprocessing's ink threshold drops the faint rim that smooth enlarging leaves
        big = torch.where(big >= BITMAP_RIM, big, torch.zeros_like(big))
        out[at] = fit_box(F.pad(big, (4, 4, 4, 4)))
    return out


def blur(x: torch.Tensor, a: WriterAugmentation, g: torch.Generator | None) -> torch.Tensor:
    """Gaussian blur (defocus), one sigma per image via a per-image 5x5 kernel (grouped conv)."""
    n = x.shape[0]
    sigma = _uniform(n, *a.blur_sigma, g).view(n, 1)
    taps = torch.arange(-2, 3, dtype=x.dtype).view(1, 5)
    k1 = torch.exp(-0.5 * (taps / sigma) ** 2)
    k1 = k1 / k1.sum(dim=1, keepdim=True)  # (n, 5)
    kernel = (k1.unsqueeze(2) * k1.unsqueeze(1)).unsqueeze(1)  # (n, 1, 5, 5)
    blurred = F.conv2d(x.view(1, n, 28, 28), kernel, padding=2, groups=n).view_as(x)
    return torch.where(_pick(n, a.p_blur, g), restretch(blurred), x)


def noise(x: torch.Tensor, a: WriterAugmentation, g: torch.Generator | None) -> torch.Tensor:
    """Sensor noise and compression speckle on and next to the strokes: preprocessing blanks
    the background away from the ink, so only the noise near it survives."""
    n = x.shape[0]
    sigma = _uniform(n, *a.noise_sigma, g).view(n, 1, 1, 1)
    near_ink = (dilate3(x) > 0.05).to(x.dtype)
    noisy = (x + near_ink * sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return torch.where(_pick(n, a.p_noise, g), noisy, x)


def bad_crop(x: torch.Tensor, a: WriterAugmentation, g: torch.Generator | None) -> torch.Tensor:
    """Cut a few pixels off one side of the ink (top, bottom, left or right), as a photo
    cropped too tightly does."""
    n = x.shape[0]
    ink = x[:, 0] > 0.1  # (n, 28, 28)
    pos = torch.arange(28, dtype=x.dtype)
    rows, cols = ink.any(dim=2), ink.any(dim=1)  # (n, 28) each
    big = torch.full_like(pos, 99.0)
    top = torch.where(rows, pos, big).amin(1)
    bottom = torch.where(rows, pos, -big).amax(1)
    left = torch.where(cols, pos, big).amin(1)
    right = torch.where(cols, pos, -big).amax(1)
    depth = _uniform(n, *a.crop_depth, g)
    side = torch.randint(0, 4, (n,), generator=g)
    ys, xs = pos.view(1, 28, 1).expand(n, 28, 28), pos.view(1, 1, 28).expand(n, 28, 28)
    coord = torch.where((side < 2).view(n, 1, 1), ys, xs)  # distance along the cut's axis
    edge = torch.stack([top, bottom, left, right], 1).gather(1, side.view(n, 1)).view(n, 1, 1)
    inward = torch.where(side % 2 == 0, 1.0, -1.0).view(n, 1, 1)  # top/left count down, else up
    mask = (inward * (coord - edge) >= depth.view(n, 1, 1)).unsqueeze(1)  # (n, 1, 28, 28) kept
    return torch.where(_pick(n, a.p_crop, g) & ~mask, torch.zeros_like(x), x)


def writers(x: torch.Tensor, a: WriterAugmentation, g: torch.Generator | None = None,
            y: torch.Tensor | None = None) -> torch.Tensor:
    """All effects in the order a picture meets them: the writer's strokes and hand, the pen,
    the crop, the scanner or camera (resolution, blur), the sensor noise. ``y`` (n,), the
    labels, lets a 1 get a flag, a 7 a bar and a 4 an open top."""
    x = restyle(x, y, a.restyle, g)
    x = geometry(x, a, g)
    x = pen_width(x, a, g)
    x = bad_crop(x, a, g)
    x = low_resolution(x, a, g)
    x = blur(x, a, g)
    return noise(x, a, g)


# The "other writers" validation set that the verdict's acceptance is fitted on: held-out
# training digits, every one warped as another writer's hand and half of them redrawn with
# another pen or letter shape, with more pens, scans and blur than training's average.
VALIDATION_WRITERS = WriterAugmentation(p_writer=1.0, p_thick=0.25, p_thin=0.25, p_lowres=0.2,
                                        p_blocky=0.5, p_bitmap=0.5, p_blur=0.2, p_noise=0.1, p_crop=0.0,
                                        restyle=Restyle(p_redraw=0.5))


def other_writers(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """Digits (n, 1, 28, 28) with labels (n,) -> the same digits as other writers write them
    (``VALIDATION_WRITERS``, drawn from ``seed``), fitted back into MNIST's box as
    preprocessing fits a photo: the verdict is fitted on these, never on test digits."""
    out = writers(x.cpu().float(), VALIDATION_WRITERS, torch.Generator().manual_seed(seed), y=y.cpu())
    return fit_box(out).to(device=x.device, dtype=x.dtype)
