"""Digit sets made from MNIST **test** digits, for the final report only: nothing here may choose
a threshold, a recipe or a model (validation data for that comes from MNIST's training digits).

  harsh photos   every digit photographed by ``vision.render.render_photo`` with its harshest
                 settings all at once: rotation up to 15 degrees, a thicker or thinner pen,
                 defocus blur, saved as JPEG at quality 55; read back through ``to_mnist``
  low-res        the UCI optdigits preprocessing applied to MNIST test digits: the ink scaled
                 into a 32x32 bitmap, counted in 4x4 blocks to an 8x8 image of 0-16, which is
                 then read the way a user's tiny scan would be (``lowres_to_field``)
  other writers  digits distorted like other writers and pens (stronger, coarser warps than
                 training's, thick and thin pens, blur), cropped and centred again
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import cv2
import numpy as np
import torch

from digitnet.preprocess import input_tensor
from digitnet.training import negatives
from digitnet.training.augment import WriterAugmentation, writers
from digitnet.training.strokes import Restyle
from digitnet.vision import imaging, render

# Every effect of a harsh photo at once; the pen is thicker or thinner, never the same.
HARSH_EFFECTS = {"rotation": 1.0, "blur": 1.0, "thick": 0.5, "thin": 0.5, "jpeg": 0.0}
HARSH_JPEG_QUALITY = 55
# Other writers: every image warped, harder and coarser than training's (a 4x4 elastic lattice
# against 5x5), more slant and rotation, more pen changes and blur; no noise or crops (photos').
# Redrawn strokes and blocky scans are set here, not taken from training's defaults, so that
# the reader's training can change without moving this set (the typefaces check other shapes).
OTHER_WRITERS = WriterAugmentation(p_writer=1.0, rotation=18.0, slant=0.45, scale=(0.8, 1.1),
                                   aspect=0.25, elastic_alpha=1.5, elastic_grid=4, p_thick=0.3,
                                   p_thin=0.3, p_lowres=0.0, p_blocky=0.0, p_blur=0.3,
                                   blur_sigma=(0.5, 1.4), p_noise=0.0, p_crop=0.0,
                                   restyle=Restyle(p_redraw=0.0))
OPTDIGITS_BITMAP = 32  # optdigits: 32x32 bitmaps, counted in 4x4 blocks -> 8x8 of 0-16
OPTDIGITS_BLOCK = 4
LOWRES_SCAN = 32  # px: the tiny image is enlarged this far, as a viewer or scanner driver does


@contextlib.contextmanager
def harsh_settings() -> Iterator[None]:
    """``render.EFFECTS`` with every harsh effect certain, restored afterwards."""
    saved = dict(render.EFFECTS)
    render.EFFECTS.update(HARSH_EFFECTS)
    try:
        yield
    finally:
        render.EFFECTS.clear()
        render.EFFECTS.update(saved)


def harsh_photos(digits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 28, 28) digits -> their harsh photos after ``to_mnist``, and which were found
    blank (no ink found: the reader never saw those, they count as refused)."""
    out, blank = np.zeros_like(digits), np.zeros(len(digits), bool)
    with harsh_settings():
        for i, d in enumerate(digits):
            photo, _ = render.render_photo(d, rng)
            jpeg = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, HARSH_JPEG_QUALITY])[1]
            try:
                out[i] = imaging.to_mnist(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
            except imaging.ImageError:
                blank[i] = True
    return out, blank


def optdigits_like(digit: np.ndarray) -> np.ndarray:
    """uint8 (28, 28) MNIST digit -> uint8 (8, 8) of 0-16 as UCI optdigits made them: the ink's
    box scaled (aspect kept) into a 32x32 bitmap, thresholded, on-pixels counted per 4x4 block."""
    ys, xs = np.nonzero(digit > 0)
    crop = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
    scale = OPTDIGITS_BITMAP / max(crop.shape)
    h, w = (max(1, round(v * scale)) for v in crop.shape)
    big = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    bitmap = np.zeros((OPTDIGITS_BITMAP, OPTDIGITS_BITMAP), np.uint8)
    y0, x0 = (OPTDIGITS_BITMAP - h) // 2, (OPTDIGITS_BITMAP - w) // 2
    bitmap[y0 : y0 + h, x0 : x0 + w] = big >= 128
    b = OPTDIGITS_BLOCK
    return bitmap.reshape(8, b, 8, b).sum(axis=(1, 3)).astype(np.uint8)


def lowres_to_field(image8: np.ndarray) -> np.ndarray | None:
    """An 8x8 image of 0-16 (white ink counts on black) -> uint8 (28, 28) read as a user's tiny
    scan would be: dark ink on white paper, enlarged to ``LOWRES_SCAN`` px with smooth
    interpolation, then ``to_mnist``. None where preprocessing finds no ink."""
    paper = 255 - np.asarray(image8, np.float32) * (255 / 16)
    scan = cv2.resize(paper, (LOWRES_SCAN, LOWRES_SCAN), interpolation=cv2.INTER_LINEAR)
    try:
        return imaging.to_mnist(np.clip(scan, 0, 255).astype(np.uint8))
    except imaging.ImageError:
        return None


def lowres(images8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8, 8) images of 0-16 -> uint8 (n, 28, 28) fields and which were found blank."""
    fields = [lowres_to_field(im) for im in images8]
    blank = np.array([f is None for f in fields])
    return np.stack([np.zeros((28, 28), np.uint8) if f is None else f for f in fields]), blank


def other_writers(images: np.ndarray, seed: int) -> np.ndarray:
    """uint8 (n, 28, 28) digits -> distorted, then cropped and centred again, uint8 (n, 28, 28)."""
    x = writers(input_tensor(images), OTHER_WRITERS, torch.Generator().manual_seed(seed))
    fields = [negatives.to_field(im) for im in (x[:, 0].numpy() * 255)]
    return np.stack([f if f is not None else np.zeros((28, 28), np.uint8) for f in fields])
