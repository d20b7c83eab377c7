"""The images the speed benchmarks send, as encoded files with their labels (seeded): drawings
as the page sends them, small photos, and 12-megapixel phone photos.

  drawing  280x280 RGBA PNG, as the page's canvas sends it: a dark MNIST test digit drawn over
           3/4 of the white canvas
  photo    JPEG (quality 90) of a rendered photo (``digitnet.vision.render``) of 0.08-0.16 MP
  phone    4000x3000 JPEG (quality 92, 2-3 MB): a rendered photo enlarged as a phone's camera
           would take it, with sensor noise at full size; every other one stored sideways
           with its EXIF orientation, as phones store photos held upright
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from digitnet.datasets import load
from digitnet.vision.render import render_photo

KINDS = ("drawing", "photo", "phone")
PHONE = (4000, 3000)  # (width, height): 12 megapixels
EXIF_ORIENTATION = 0x0112


def drawing(digit28: np.ndarray) -> bytes:
    """A white-on-black MNIST digit as the page's canvas: #111 ink on opaque white, 280x280 RGBA PNG."""
    canvas = np.full((280, 280), 255, np.float32)
    coverage = cv2.resize(digit28, (210, 210), interpolation=cv2.INTER_CUBIC).clip(0, 255) / 255.0
    canvas[35:245, 35:245] = 255 - coverage * (255 - 0x11)
    return encode(".png", cv2.cvtColor(canvas.round().astype(np.uint8), cv2.COLOR_GRAY2BGRA))


def photo(digit28: np.ndarray, rng: np.random.Generator) -> bytes:
    """A rendered photo of 0.08-0.16 megapixels (the renderer's larger canvases), JPEG."""
    while True:
        image, _ = render_photo(digit28, rng)
        if 80_000 <= image.shape[0] * image.shape[1] <= 160_000:
            return encode(".jpg", image, cv2.IMWRITE_JPEG_QUALITY, 90)


def phone(digit28: np.ndarray, rng: np.random.Generator, sideways: bool) -> bytes:
    """A rendered photo padded to 4:3 with its own paper, enlarged to 4000x3000 with noise."""
    image, _ = render_photo(digit28, rng)
    h, w = image.shape[:2]
    width, height = PHONE
    pad_w, pad_h = max(w, round(h * width / height)) - w, max(h, round(w * height / width)) - h
    image = cv2.copyMakeBorder(image, pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2,
                               cv2.BORDER_REPLICATE)
    big = cv2.resize(image, PHONE, interpolation=cv2.INTER_LINEAR).astype(np.float32)
    big += rng.normal(0, 4, big.shape).astype(np.float32)
    rgb = cv2.cvtColor(np.clip(big, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB)
    exif = Image.Exif()
    if sideways:  # stored turned left; orientation 6 says "turn right to show"
        rgb = cv2.rotate(rgb, cv2.ROTATE_90_COUNTERCLOCKWISE)
        exif[EXIF_ORIENTATION] = 6
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


def samples(kind: str, n: int, seed: int = 0) -> tuple[list[bytes], list[int]]:
    """``n`` encoded images of ``kind`` (one of ``KINDS``) of MNIST test digits, and their labels."""
    ds = load("mnist")
    rng = np.random.default_rng(seed)
    digits, labels = ds.x_test[:n], [int(y) for y in ds.y_test[:n]]
    if kind == "drawing":
        return [drawing(d) for d in digits], labels
    if kind == "photo":
        return [photo(d, rng) for d in digits], labels
    if kind == "phone":
        return [phone(d, rng, sideways=i % 2 == 1) for i, d in enumerate(digits)], labels
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
