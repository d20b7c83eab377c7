"""The picture a correction keeps: the ink the person sent, as a small PNG of pixels only.

Never the file as it came: that can carry a phone's EXIF (the place a photo was taken, the
camera), anything appended after the image's end, and megabytes of pixels nobody needs. What
is kept is decoded, cropped to the writing with a margin, shrunk so its longer side is at most
``MAX_SIDE`` px, and written again as an 8-bit grey PNG: at most ``MAX_SIDE``² bytes of
pixels, whatever was uploaded.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitnet.errors import DigitnetError

MAX_SIDE = 256  # px: enough to see what was written, small enough to keep thousands
MARGIN = 0.1  # of the ink box's longer side, kept round the writing


def ink_crop(gray: np.ndarray, box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """``gray`` uint8 (H, W) cropped to ``box`` (x0, y0, x1, y1 as fractions of the width and
    height) with a margin, and shrunk to at most ``MAX_SIDE`` px a side: uint8 (h, w)."""
    height, width = gray.shape[:2]
    if box is not None:
        x0, y0, x1, y1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
        pad = MARGIN * max(x1 - x0, y1 - y0)
        gray = gray[max(0, int(y0 - pad)) : min(height, int(np.ceil(y1 + pad))),
                    max(0, int(x0 - pad)) : min(width, int(np.ceil(x1 + pad)))]
    scale = MAX_SIDE / max(gray.shape)
    if scale < 1:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray, np.uint8)


def png(gray: np.ndarray) -> bytes:
    """uint8 (h, w) as a PNG holding only its pixels (OpenCV writes no text or EXIF chunks)."""
    ok, data = cv2.imencode(".png", gray, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise DigitnetError("could not encode the correction's picture as PNG")
    return data.tobytes()


def cleaned(data: bytes, fallback: np.ndarray | None) -> bytes:
    """A stored image file (bytes as once sent) as ``png(ink_crop(...))`` of its pixels; when it
    cannot be decoded, ``fallback`` (the 28x28 the model saw) or a 1x1 black pixel."""
    from digitnet.vision import imaging

    try:
        gray = imaging.decode(data, "stored image", MAX_SIDE, gray=True)
    except (DigitnetError, cv2.error, ValueError):
        gray = fallback if fallback is not None else np.zeros((1, 1), np.uint8)
    return png(ink_crop(gray))
