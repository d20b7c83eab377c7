"""Read a number written on one line, touching and overlapping digits included.

Nothing is cut before the model has looked: the line of ink goes whole to a line reader
(``digitnet.runs.line_reading``, a convolutional-recurrent network trained with CTC loss), which
gives, for every column of a few pixels, the probability of each digit and of "no digit here". Cutting
first cannot work where people do not leave gaps: a narrow 1 touching its neighbour becomes
one piece, two overlapping 0s look like an 8.

  decode -> white ink on black and its mask on a copy at most 1024 px long, as for a digit
  (``imaging.find_ink``) -> the one line of writing (several lines or a column are refused)
  -> ``to_line``: cropped, 24 px tall in a 32 px strip -> line reader -> digits, each with its
  probability, runner-up and box in the input image.

Marks that are not digits (a dot, a dash, an underline) come out as "no digit here"; a line
with no digit at all reads as no number rather than an invented one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import cv2
import numpy as np

from digitnet.vision import imaging

LINE_HEIGHT = 32  # rows of the line reader's input
# The ink's height in it: MNIST keeps 20 of 28 rows for the digit; a line keeps a little more
# margin, for baselines that drift and strokes that reach below the line.
INK_HEIGHT = 24
BORDER = (LINE_HEIGHT - INK_HEIGHT) // 2  # black above, below and on either side of the ink
# Strips are padded to a multiple of this width: lines of about the same length then share one
# input shape, whose convolution kernels the runtime prepares once (a new shape costs ~3 ms).
WIDTH_STEP = 32
# A band of rows holding ink is a line of writing when it is at least this fraction of the
# tallest band's height; lower bands are underlines, dashes, the bar of a 5 or dirt.
MIN_LINE_HEIGHT = 0.5
# A digit's box reaches at most this many line heights either side of where it was read.
HALF_DIGIT = 0.6
# Longest line read, in line heights: a number of 40 digits is about 35 heights long. Longer
# ink is a rule, a border or noise, and would cost the reader time in proportion.
MAX_LINE_ASPECT = 45
# px: the longer side of the copy a number is read on. The line reader sees the writing 24 px
# tall whatever the photo's size (even a 45:1 line is 23 px tall at that width), so a larger
# copy only costs time and memory (an image at the pixel limit took 3 s and 880 MB at full size).
READ_SIDE = imaging.NUMBER_SIDE  # the same bound find_ink keeps, so the copy is not shrunk twice


@dataclass(frozen=True)
class LineDigit:
    """One digit read on the line: ``frame`` is the output column where it was surest."""

    digit: int
    probability: float
    runner_up: int
    unsure: bool
    frame: int


class LineModel(Protocol):
    """What ``read_number`` needs of a line reader (``runs.line_reading.LineReader``)."""

    frame: int  # input columns per output column

    def read(self, line: np.ndarray) -> tuple[list[LineDigit], float]: ...


@dataclass
class DigitReading:
    """One digit: its class, probability, box (x, y, w, h) in input pixels, and the runner-up
    digit; ``unsure`` when the runner-up is close enough to name both ("3 or 5?").
    ``image28`` is the digit's ink from its box as an MNIST-style 28x28 picture."""

    digit: int
    probability: float
    box: tuple[int, int, int, int]
    runner_up: int
    unsure: bool
    image28: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"digit": self.digit, "probability": self.probability, "box": list(self.box),
                "runner_up": self.runner_up, "unsure": self.unsure}


@dataclass
class NumberReading:
    """The digits read, left to right; ``probability`` is the model's probability of the whole
    number. ``line`` is the uint8 (32, W) strip the model was given."""

    text: str
    probability: float
    digits: list[DigitReading]
    line: np.ndarray = field(repr=False)

    @property
    def unsure(self) -> bool:
        return any(d.unsure for d in self.digits) or self.probability < 0.5

    @property
    def verdict(self) -> str:
        """As a person says it: "1234", "1234? (3rd digit 3 or 5)" or "not a number"."""
        if not self.digits:
            return "not a number"
        doubts = [f"{ordinal(i + 1)} digit {d.digit} or {d.runner_up}"
                  for i, d in enumerate(self.digits) if d.unsure]
        if doubts:
            return f"{self.text}? ({', '.join(doubts)})"
        return f"{self.text}?" if self.unsure else self.text


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def ink_extent(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), inclusive, of the pixels above a tenth of the brightest: the
    crop of ``to_line``. Raises ImageError("blank") when there is no ink."""
    top = float(ink.max()) if ink.size else 0.0
    if top <= 0:
        raise imaging.ImageError("blank image: no writing found; photograph the number darker or "
                                 "closer", "blank")
    strokes = ink > 0.1 * top
    rows, cols = np.flatnonzero(strokes.any(axis=1)), np.flatnonzero(strokes.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def to_line(ink: np.ndarray) -> np.ndarray:
    """White ink on black (any size, any numeric type) -> uint8 (32, W), W a multiple of 32:
    the ink cropped (``ink_extent``), scaled to 24 px tall with its aspect kept (INTER_AREA when
    shrinking), strokes stretched as ``imaging.fit_box`` does, in a black border (4 px, more on
    the right up to W). The one rule from ink to the line reader's input, for photos and for
    the synthetic lines it learns from.
    """
    ink = np.asarray(ink, np.float32)
    y0, y1, x0, x1 = ink_extent(ink)
    crop = ink[y0 : y1 + 1, x0 : x1 + 1]
    scale = INK_HEIGHT / crop.shape[0]
    width = max(1, round(crop.shape[1] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = np.clip(cv2.resize(crop, (width, INK_HEIGHT), interpolation=interpolation), 0, None)
    strokes = small[small > 0.1 * small.max()]
    # as in fit_box: the 60th percentile of the ink becomes full white, as in MNIST
    level = max(float(np.percentile(strokes, 60)), 1e-6)
    line = np.zeros((LINE_HEIGHT, -(-(width + 2 * BORDER) // WIDTH_STEP) * WIDTH_STEP), np.uint8)
    line[BORDER : BORDER + INK_HEIGHT, BORDER : BORDER + width] = \
        np.clip(small * (255.0 / level), 0, 255).round().astype(np.uint8)
    return line


def line_of_writing(mask: np.ndarray) -> np.ndarray:
    """The ink of the one line of writing in ``mask``: every connected piece that reaches into
    the band of rows where the line is (marks wholly above or below it are dropped).

    Bands are runs of rows holding ink. Raises ImageError("layout") when two bands are tall
    enough to be lines of writing: a number over two lines, or digits in a column; "blank"
    when there is no ink.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise imaging.ImageError("blank image: no writing found; photograph the number darker or "
                                 "closer", "blank")
    breaks = np.flatnonzero(np.diff(rows) > 1)
    bands = list(zip(rows[np.r_[0, breaks + 1]], rows[np.r_[breaks, len(rows) - 1]], strict=True))
    tallest = max(b - a + 1 for a, b in bands)
    lines = [(a, b) for a, b in bands if b - a + 1 >= MIN_LINE_HEIGHT * tallest]
    if len(lines) > 1:
        raise imaging.ImageError(
            f"the writing is on {len(lines)} lines (or in a column); a number is read from one "
            f"line: crop the image to one line of digits", "layout")
    (top, bottom), = lines
    labels, stats = imaging.pieces(mask)
    y0, y1 = stats[:, cv2.CC_STAT_TOP], stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT]
    keep = (y1 > top) & (y0 <= bottom)
    keep[0] = False  # the background
    return keep[labels]


def digit_box(mask: np.ndarray, left: int, right: int) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the ink in columns [left, right) of ``mask``, or None if there is none."""
    ys, xs = np.nonzero(mask[:, max(0, left) : max(0, right)])
    if ys.size == 0:
        return None
    x0 = max(0, left)
    return (int(x0 + xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))


def digit_image(ink: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The ink inside ``box`` as an MNIST-style uint8 (28, 28) picture (black if it has none)."""
    x, y, w, h = box
    # 2 px round the box: the reach of clean_ink's dilation, which keeps the strokes' grey edges
    y0, x0 = max(0, y - 2), max(0, x - 2)
    own = np.zeros((y + h + 2 - y0, x + w + 2 - x0), bool)
    own[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = mask[y : y + h, x : x + w]
    region = ink[y0 : y + h + 2, x0 : x + w + 2]
    own = own[: region.shape[0], : region.shape[1]]
    return imaging.mnist_from_ink(region, own) if own.any() else np.zeros((28, 28), np.uint8)


def read_number(image: np.ndarray, reader: LineModel) -> NumberReading:
    """A decoded image of a number on one line -> its digits, left to right, boxes in the
    image's pixels.

    The ink is found as for a digit (``imaging.find_ink``) on a copy at most
    ``imaging.NUMBER_SIDE`` px long. Each digit's box is the ink between the midpoints to its
    neighbours, at most 0.6 line heights either side of the column where the reader saw it.
    Raises ImageError("blank") when there is no ink, ImageError("layout") for writing on several
    lines and ImageBoundsError for a line too long to be a number.
    """
    gray = imaging.to_gray(image)
    seen = imaging.find_ink(gray, imaging.polarity(gray), imaging.NUMBER_SIDE)
    ink, mask = seen.ink, line_of_writing(seen.mask)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    aspect = (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)
    if aspect > MAX_LINE_ASPECT:
        raise imaging.ImageBoundsError(f"the writing is {aspect:.0f} times as long as it is tall, too "
                                       f"long for one number (the limit is {MAX_LINE_ASPECT}); crop "
                                       f"the image to the number")
    clean = imaging.clean_ink(ink, mask)
    line = to_line(clean)
    found, probability = reader.read(line)
    # line columns -> copy columns: the crop's left edge and scale, as to_line made them
    y0, y1, x0, _ = ink_extent(clean)
    scale = INK_HEIGHT / (y1 - y0 + 1)
    centres = [x0 + ((d.frame + 0.5) * reader.frame - BORDER) / scale for d in found]
    reach = HALF_DIGIT * INK_HEIGHT / scale
    digits = []
    for i, (d, centre) in enumerate(zip(found, centres, strict=True)):
        left = max(centre - reach, (centres[i - 1] + centre) / 2 if i else -np.inf)
        right = min(centre + reach, (centre + centres[i + 1]) / 2 if i + 1 < len(centres) else np.inf)
        box = digit_box(mask, round(left), round(right) + 1)
        if box is None:  # read where the ink is thin: a box of the column alone
            box = (int(np.clip(centre, 0, mask.shape[1] - 1)), y0, 1, y1 - y0 + 1)
        image28 = digit_image(ink, mask, box)
        digits.append(DigitReading(d.digit, d.probability, in_picture(box, seen.factor, gray.shape),
                                   d.runner_up, d.unsure, image28))
    return NumberReading("".join(str(d.digit) for d in digits), probability, digits, line)


def in_picture(box: tuple[int, int, int, int], factor: int, shape: tuple[int, int]
               ) -> tuple[int, int, int, int]:
    """A box (x, y, w, h) on a copy ``factor`` times smaller -> the same box in the picture's
    pixels, within the picture (the copy's last block may be narrower)."""
    x, y, w, h = (v * factor for v in box)
    height, width = shape
    return x, y, min(w, width - x), min(h, height - y)


def for_reading(data: bytes, source: str) -> tuple[np.ndarray, float]:
    """(the image decoded as a grey copy at most ``READ_SIDE`` px a side, the factor from its
    coordinates to the image's own). A JPEG is scaled down inside the decoder first, as far as
    ``READ_SIDE`` allows: a 12-megapixel photo decodes several times faster."""
    height, width = imaging.upright_size(data, source)
    gray = imaging.decode(data, source, READ_SIDE, gray=True)
    scale = READ_SIDE / max(height, width)
    if scale >= 1:
        return gray, 1.0
    small = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    return small, width / small.shape[1]


def number_from_bytes(data: bytes, source: str, reader: LineModel
                      ) -> tuple[NumberReading, np.ndarray, float]:
    """An image file's bytes -> (the number read, the grey copy it was read on, which its boxes
    refer to, and the factor from that copy's pixels to the image's own): the one way in for
    ``digitnet read``, /api/read and corrections. Every failure is an ImageError naming
    ``source``."""
    with imaging.opencv_errors(source):
        picture, factor = for_reading(data, source)
        return read_number(picture, reader), picture, factor


def in_original(reading: NumberReading, factor: float) -> NumberReading:
    """The reading with its boxes in the pixels of the image itself (``factor`` from
    ``number_from_bytes``), as ``digitnet read`` and /api/read report them."""
    if factor == 1:
        return reading
    digits = [replace(d, box=tuple(round(v * factor) for v in d.box)) for d in reading.digits]
    return replace(reading, digits=digits)
