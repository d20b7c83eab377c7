"""Real images (photos, scans, drawings) -> MNIST-style 28x28 digits, and the ink a number is
read from.

MNIST digits are white on black, the ink's bounding box scaled to fit 20x20 with its aspect
ratio kept, anti-aliased grey edges, placed in a 28x28 field with the centre of mass in the
middle. A phone photo is the opposite on every count: dark ink on light, tinted and unevenly
lit paper, noise, any size and position. ``to_mnist`` repeats the MNIST authors' steps on it:

  decode -> grayscale (alpha flattened onto white) -> polarity -> a copy at most 512 px long
  -> white-on-black, the paper's plane removed (``paper``) -> denoised mask by Otsu's
  threshold (grey levels kept for the image)                     [``find_ink``: shared so far]
  -> specks and far marks dropped (a small digit: the same again, closer) -> ink cropped
  -> longer side to 20 px (exact area averaging) -> 28x28 field
  -> shifted so the centre of mass is in the middle.

A number (``numbers.read_number``) takes the same steps to the mask on a copy at most 1024 px
long, then keeps its one line of writing for the line reader. From a file's bytes there is one
way in for each: ``digit_from_bytes`` (predict, /api/predict, corrections) and
``numbers.number_from_bytes`` (read, /api/read, corrections).

The algorithm (``PREPROCESS_VERSION``) is computed in whole numbers, so that the web page's
reader/imaging.js repeats it to the byte; every model's calibration records the version its
verdict was fitted with.

``decode`` refuses what is not an image, what is truncated and what is too large (the size is
read from the file header before any pixel is decoded, so a small file that would expand to
gigabytes is refused without expanding it).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from digitnet.errors import DigitnetError
from digitnet.vision import paper

# Names the algorithm from gray pixels to the 28x28 digit; the page's reader/imaging.js says which
# one it implements and refuses a model made with another (model.json records this).
PREPROCESS_VERSION = "digitnet-preprocess-3"
MAX_PIXELS = 40_000_000
# Longer side / shorter side. A number of 40 digits is about 35 times as wide as tall; far
# thinner images are lines or noise, whose ink would be cut into thousands of candidate digits.
MAX_ASPECT = 60
DIGIT_BOX = 20  # MNIST: the ink's longer side, in pixels
FIELD = 28  # MNIST: the image side; the centre of mass sits at (14, 14) on average
# Formats OpenCV decodes, as Pillow names them: a file Pillow recognises as one of these but
# OpenCV cannot decode is damaged; any other recognised format is simply not supported.
DECODABLE = {"PNG", "JPEG", "MPO", "BMP", "DIB", "TIFF", "WEBP", "PPM", "JPEG2000", "SUN"}
FORMATS_HINT = "use a PNG, JPEG, BMP, TIFF or WebP file"
MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")
# EXIF orientation tag -> how to turn the stored pixels upright (phones store photos sideways).
EXIF_ORIENTATION = 0x0112
_UPRIGHT = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: lambda a: cv2.transpose(a),
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.rotate(cv2.transpose(a), cv2.ROTATE_180),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}
# Ink must stand out from the paper by this many grey levels (of 255) to count as writing;
# below it an image is "blank" rather than a faint digit buried in sensor noise.
MIN_CONTRAST = 24
# Connected pieces of ink smaller than this percentage of the largest piece are specks (dust,
# noise, paper grain); a broken stroke (the bar of a 5, the top of a 4) is far larger.
SPECK_PERCENT = 3
# Work at the resolution the answer needs. A digit is found and cleaned on a copy at most
# WORK_SIDE px long (far more than the 20 px it becomes), looked at again closer when it is under
# ZOOM_BELOW px there. A number is read on a copy at most NUMBER_SIDE px long: the line reader
# sees the writing 24 px tall whatever the photo's size (a 45:1 line is still 11 px tall on it),
# so a larger copy only costs time and memory. (The polarity and the paper are judged on smaller
# copies still: ``paper``.)
WORK_SIDE = 512
ZOOM_BELOW = 64
NUMBER_SIDE = 1024
# A JPEG of one digit is decoded scaled down (by 1/2, 1/4 or 1/8, inside the decoder) as far as
# its longer side stays at least this: a digit a tenth of the photo's length keeps 100 px.
DIGIT_PHOTO_SIDE = 1000


class ImageError(DigitnetError):
    """An input image that cannot be used; ``kind`` says why.

    ``kind`` is one of ``not_image`` (the bytes are no image format we read), ``corrupt``
    (truncated or damaged), ``too_large`` (more than ``MAX_PIXELS``), ``blank`` (no ink) or
    ``out_of_bounds`` (see ``ImageBoundsError``) or ``layout`` (writing on several lines where
    one line is read).
    """

    KINDS = ("not_image", "corrupt", "too_large", "blank", "out_of_bounds", "layout")

    def __init__(self, message: str, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown image error kind {kind!r}")
        super().__init__(message)
        self.kind = kind


class ImageBoundsError(ImageError):
    """An image whose shape or content would cost far more work than any real digit or number:
    too thin (``MAX_ASPECT``), or writing too long to be one number
    (``numbers.MAX_LINE_ASPECT``). Refused before the work."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "out_of_bounds")


@contextlib.contextmanager
def opencv_errors(source: str) -> Iterator[None]:
    """Turn an OpenCV failure on an image it decoded but cannot process (exotic layouts) into
    the one-line ImageError; every caller that preprocesses images (CLI files, web) uses this."""
    try:
        yield
    except cv2.error as e:
        raise ImageError(f"{source}: cannot process this image ({e.err}); re-save it as PNG",
                         "corrupt") from e


# ---------------------------------------------------------------------------------------------
# Reading files


def _looks_like_image(data: bytes) -> bool:
    """True if the bytes start like a PNG, JPEG, BMP, TIFF, WebP or GIF file."""
    return data.startswith(MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _header(data: bytes, source: str) -> tuple[str, int, int]:
    """(format, width, height) from the file header, without decoding any pixels.

    Pillow's ``Image.open`` is lazy: it parses only the header. Its own decompression-bomb
    check fires for huge sizes; both it and ours are reported as ``too_large``.
    """
    if not data:
        raise ImageError(f"{source}: empty file; {FORMATS_HINT}", "not_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb warnings (checked below), odd EXIF
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                fmt = im.format or "?"
    except Image.DecompressionBombError as e:
        raise ImageError(f"{source}: image too large ({e}); the limit is "
                         f"{MAX_PIXELS // 1_000_000} megapixels, scale it down first", "too_large") from e
    except UnidentifiedImageError as e:
        if _looks_like_image(data):  # e.g. a TIFF cut short: its directory is at the end
            raise ImageError(f"{source}: damaged or truncated image (its header cannot be read); "
                             f"copy or export it again", "corrupt") from e
        raise ImageError(f"{source}: not an image file; {FORMATS_HINT}", "not_image") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{source}: damaged image header ({e}); copy or export it again",
                         "corrupt") from e
    if width * height > MAX_PIXELS:
        raise ImageError(f"{source}: image too large ({width}x{height} = {width * height / 1e6:.1f} "
                         f"megapixels); the limit is {MAX_PIXELS // 1_000_000} megapixels, "
                         f"scale it down first", "too_large")
    if max(width, height) > MAX_ASPECT * max(1, min(width, height)):
        raise ImageBoundsError(f"{source}: image is {width}x{height} pixels, more than {MAX_ASPECT} "
                               f"times as long as it is wide; crop it to the writing")
    return fmt, width, height


def _png_is_complete(data: bytes) -> bool:
    """False if a PNG ends early or fails its checks (OpenCV's libpng would print its
    complaint on stderr). ``verify`` walks the chunks and their CRCs without inflating pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                im.verify()
    except (OSError, SyntaxError, ValueError, EOFError):
        return False
    return True


def _jpeg_pixels(data: bytes, width: int, height: int, min_side: int | None, gray: bool
                 ) -> np.ndarray | None:
    """A JPEG decoded by Pillow: uint8 (H, W) gray or (H, W, 3) BGR; None if it ends early or is
    damaged (OpenCV's JPEG reader would pad a cut-off photo with grey instead).

    With ``min_side``, libjpeg scales the image by 1/2, 1/4 or 1/8 while decoding (``draft``),
    as far as its longer side stays at least ``min_side`` px: it skips most of the inverse DCT
    and colour work, so a 12-megapixel photo decodes several times faster. Every entropy-coded
    byte is still read, so a truncated file is still found. With ``gray`` only the luma is
    reconstructed (the grey of ``to_gray``, without the colour planes).
    """
    mode = "L" if gray else "RGB"
    scale = 1.0 if min_side is None else min(1.0, min_side / max(width, height))
    at_least = (max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale))))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                im.draft(mode, at_least)  # the largest reduction that keeps at_least (w, h)
                im.load()
                if im.mode not in ("L", mode):  # CMYK, YCCK: as OpenCV, converted to colour
                    im = im.convert(mode)
                pixels = np.asarray(im)
    except (OSError, SyntaxError, ValueError, EOFError):
        return None
    return pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)


def _orientation(data: bytes, fmt: str) -> int:
    """The EXIF orientation (1-8; 1 = upright) of a photo; 1 when absent or unreadable."""
    if fmt not in ("JPEG", "MPO", "TIFF", "WEBP"):
        return 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except (OSError, SyntaxError, ValueError, EOFError, TypeError):
        return 1


def upright_size(data: bytes, source: str = "image") -> tuple[int, int]:
    """(height, width) of the image upright, from its header alone: the size ``decode`` gives
    at full scale, for mapping a reduced copy back to the image's own pixels."""
    fmt, width, height = _header(data, source)
    return (width, height) if _orientation(data, fmt) in (5, 6, 7, 8) else (height, width)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Keep OpenCV's decoder warnings off stderr (each failure is reported as one line)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """16-bit or float images -> uint8 with the same channels (float assumed in [0, 1])."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.nan_to_num(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    info = np.iinfo(image.dtype)
    scaled = (image.astype(np.float64) - info.min) / (info.max - info.min)
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def decode(data: bytes, source: str = "image", min_side: int | None = None, gray: bool = False
           ) -> np.ndarray:
    """Image bytes -> uint8 (H, W) gray, (H, W, 3) BGR or (H, W, 4) BGRA, upright; with ``gray``
    always (H, W) (``to_gray``).

    The size comes from the header first (refused above ``MAX_PIXELS`` before decoding).
    JPEGs are decoded by Pillow, at a reduced scale when ``min_side`` allows it
    (``_jpeg_pixels``); other formats by OpenCV with ``IMREAD_UNCHANGED`` (16-bit becomes 8-bit),
    at full size. The EXIF orientation is applied. ``source`` names the input in error messages.
    """
    fmt, width, height = _header(data, source)
    if fmt in ("JPEG", "MPO"):
        image = _jpeg_pixels(data, width, height, min_side, gray)
        if image is None:
            raise ImageError(f"{source}: truncated or damaged {fmt} image; copy or export it again",
                             "corrupt")
    else:
        image = _opencv_pixels(data, fmt, source)
        image = to_gray(image) if gray else image
    return _UPRIGHT.get(_orientation(data, fmt), lambda a: a)(image)


def _opencv_pixels(data: bytes, fmt: str, source: str) -> np.ndarray:
    """Any other format decoded by OpenCV: uint8 gray, BGR or BGRA."""
    if fmt == "PNG" and not _png_is_complete(data):
        raise ImageError(f"{source}: truncated or damaged {fmt} image; copy or export it again",
                         "corrupt")
    with _quiet_opencv():
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        if fmt in DECODABLE:
            raise ImageError(f"{source}: truncated or damaged {fmt} image (it cannot be decoded); "
                             f"copy or export it again", "corrupt")
        raise ImageError(f"{source}: {fmt} images are not supported; {FORMATS_HINT}", "not_image")
    image = to_uint8(image)
    return image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image


def read_file(path: str | Path) -> bytes:
    """An image file's bytes; every failure is one line naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file; give the image files in it",
                         "not_image")
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise DigitnetError(f"{path}: no such file; check the path") from e
    except PermissionError as e:
        raise DigitnetError(f"{path}: permission denied; make the file readable") from e
    except OSError as e:
        raise DigitnetError(f"{path}: cannot read it ({e.strerror or e}); check the file") from e


def load(path: str | Path, min_side: int | None = None, gray: bool = False) -> np.ndarray:
    """Read and ``decode`` an image file; every failure is one line naming the file."""
    return decode(read_file(path), str(path), min_side, gray)


# ---------------------------------------------------------------------------------------------
# From any image to white ink on black


def luma(bgr: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3 or 4) BGR(A) -> uint8 (H, W): 0.299 R + 0.587 G + 0.114 B in 15-bit fixed
    point, rounded (OpenCV's BGR2GRAY, written out so that reader/imaging.js repeats it)."""
    b, g, r = (bgr[:, :, c].astype(np.int32) for c in range(3))
    return ((r * 9798 + g * 19235 + b * 3735 + 16384) >> 15).astype(np.uint8)


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W), (H, W, 2|3|4) -> uint8 (H, W); transparent pixels become white paper.

    A drawing of light strokes on a transparent background would vanish on white, so if
    flattening onto white leaves no contrast the image is flattened onto black instead.
    """
    image = to_uint8(np.asarray(image))
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels == 1:
        return image[:, :, 0]
    if channels not in (2, 3, 4):
        raise ImageError(f"images with {channels} channels are not supported", "not_image")
    gray = image[:, :, 0] if channels == 2 else luma(image)
    if channels == 3:
        return gray
    alpha = image[:, :, -1].astype(np.int32)
    if alpha.min() == 255:  # opaque, as the page's canvas: nothing to flatten
        return gray
    # whole grey levels, rounded half up, as reader/imaging.js computes them
    on_black = gray * alpha
    on_white = (on_black + 255 * (255 - alpha) + 127) // 255
    if np.ptp(on_white) < MIN_CONTRAST and np.ptp(alpha) >= MIN_CONTRAST:
        return ((on_black + 127) // 255).astype(np.uint8)
    return on_white.astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# The steps from gray pixels to the 28x28 digit. Every grey level below and in ``paper`` is
# computed with whole numbers (block sums, minima and maxima, medians, counts) or with one IEEE
# double operation at a time in a fixed order, so reader/imaging.js repeats it to the byte:
# tests/js checks it on fixtures written by scripts/preprocess_fixtures.py.


@dataclass(frozen=True)
class Ink:
    """A picture as white ink on black, on the copy its steps ran on: what a digit and a number
    share before they part (``find_ink``)."""

    ink: np.ndarray  # uint8 (h, w): white ink on black, paper and uneven light removed
    mask: np.ndarray  # bool (h, w): the ink's pixels (Otsu's threshold, specks dropped)
    factor: int  # the picture's pixels per pixel of this copy (a whole number)


def to_white_on_black(image: np.ndarray) -> np.ndarray:
    """Any image -> uint8 (H, W) white ink on a black background at its own size, paper and
    uneven light removed (the first shared step, without the working copy)."""
    gray = to_gray(image)
    return paper.white_on_black(gray, polarity(gray))


def find_ink(gray: np.ndarray, dark: bool, side: int) -> Ink:
    """uint8 (H, W) gray picture and its polarity -> its ``Ink`` on a copy at most ``side`` px
    long, averaged down by a whole factor. Raises ImageError("blank") when nothing stands out."""
    view, factor = paper.shrink(gray, side)
    ink = paper.white_on_black(view, dark)
    return Ink(ink, ink_mask(ink), factor)


def denoise(ink: np.ndarray) -> np.ndarray:
    """Median filter sized to the image (3 px up to 500 px, 5 px above): removes sensor noise
    and JPEG ringing while keeping stroke edges."""
    return cv2.medianBlur(ink, 3 if max(ink.shape) <= 500 else 5)


def otsu(hist: np.ndarray) -> int:
    """The threshold of a 256-bin histogram: Otsu's split (<= t, > t; the largest between-class
    variance, (N s1 - n1 S)^2 / (n1 (N - n1)) in doubles, the first on ties), then moved halfway
    between the two classes' means. Otsu's own t sits at the top of the darker class; where the
    paper is a little lighter elsewhere than along the strokes, the midpoint still clears it."""
    total, weight = int(hist.sum()), int(np.dot(hist, np.arange(256)))
    best, split, n1, s1 = 0.0, None, 0, 0
    for t in range(255):
        n1, s1 = n1 + int(hist[t]), s1 + t * int(hist[t])
        if n1 == 0 or n1 == total:
            continue
        d = float(total * s1 - n1 * weight)
        between = d * d / float(n1 * (total - n1))
        if between > best:
            best, split = between, (n1, s1)
    if split is None:
        return 0
    n1, s1 = split
    # floor((s1 / n1 + (S - s1) / (N - n1)) / 2), in whole numbers
    return (s1 * (total - n1) + (weight - s1) * n1) // (2 * n1 * (total - n1))


def ink_threshold(smooth: np.ndarray) -> int:
    """Otsu's threshold computed on the pixels along strong edges (3x3 Sobel magnitude at
    least 0.3 of its largest, and their neighbours).

    On a whole photo the ink is often under 1% of the pixels and Otsu's split lands inside
    the paper's texture; along the strokes' edges ink and paper are about equally many, which
    is the balanced case Otsu's method handles well.
    """
    # int32 is exact: |gradient| <= 4 * 255, so 100 * strength < 2^31
    gx = cv2.Sobel(smooth, cv2.CV_16S, 1, 0, ksize=3).astype(np.int32)
    gy = cv2.Sobel(smooth, cv2.CV_16S, 0, 1, ksize=3).astype(np.int32)
    strength = gx * gx + gy * gy
    edges = 100 * strength >= 9 * strength.max()
    near = cv2.dilate(edges.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return otsu(np.bincount(smooth[near], minlength=256))


def _lower_median(hist: np.ndarray) -> int:
    """The lower median of the grey levels counted in ``hist`` (one bin per level)."""
    return int(np.searchsorted(np.cumsum(hist), (int(hist.sum()) - 1) // 2, side="right"))


def _blank() -> ImageError:
    return ImageError("blank image: no writing stands out from the background; "
                      "photograph the digit darker or closer", "blank")


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """White-on-black image -> bool (H, W) mask of the ink: the denoised image above Otsu's
    threshold, specks dropped. Raises ImageError("blank") when nothing stands out."""
    smooth = denoise(ink)
    if int(smooth.max()) - int(smooth.min()) < MIN_CONTRAST:
        raise _blank()
    threshold = ink_threshold(smooth)
    # the ink is the levels above the threshold, the background those at or below it
    hist = np.bincount(smooth.ravel(), minlength=256)
    fg, bg = hist[threshold + 1 :], hist[: threshold + 1]
    if not fg.any() or not bg.any() or threshold + 1 + _lower_median(fg) - _lower_median(bg) < MIN_CONTRAST:
        raise _blank()
    return without_specks(smooth > threshold)


def pieces(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected pieces of a mask: (labels int32 (H, W), stats (n + 1, 5) as OpenCV's, row 0
    the background). Grana's block-based labelling (BBDT) finds the same pieces as OpenCV's
    default (Spaghetti) three times faster on these masks with 32-bit labels: 0.28 against
    0.92 ms on 350x350 px, one thread, AVX2 (three of every photo's 8 ms of preprocessing).
    No rule here depends on the order in which labels are numbered (``_first_pixel``)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        mask.astype(np.uint8), 8, cv2.CV_32S, cv2.CCL_BBDT)
    return labels, stats


def _first_pixel(labels: np.ndarray, stats: np.ndarray, piece: int) -> int:
    """The raster index of a piece's first pixel, which orders pieces the same in any language:
    it lies in the piece's top row."""
    top = int(stats[piece, cv2.CC_STAT_TOP])
    return top * labels.shape[1] + int(np.argmax(labels[top] == piece))


def without_specks(mask: np.ndarray) -> np.ndarray:
    """bool or 0/1 (H, W) mask -> bool (H, W) without its specks: single pixels and pieces
    smaller than ``SPECK_PERCENT`` of the largest."""
    labels, stats = pieces(mask)
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    keep = np.zeros(len(stats), bool)
    if len(stats) > 1:
        keep[1:] = (areas[1:] >= 2) & (100 * areas[1:] >= SPECK_PERCENT * areas[1:].max())
    return keep[labels]


def clean_ink(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The denoised grey levels of the ink, zero outside the mask grown by a stroke edge.

    Otsu's mask cuts through the anti-aliased edges of strokes; growing it a little keeps
    those grey edges (MNIST has them) without bringing back the background.
    """
    grown = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return np.where(grown > 0, denoise(ink), 0).astype(np.uint8)


def _area_weights(size: int, out: int) -> np.ndarray:
    """(out, size) int64: how much of source pixel s output pixel d covers when ``size`` pixels
    become ``out`` (fewer), in units of 1/out source pixel: d spans [d size, (d + 1) size) and s
    spans [s out, (s + 1) out). Every output pixel covers the same share and every source pixel
    is counted, to the last column (a common scale for both sides, rounded, dropped or dimmed it)."""
    d = np.arange(out, dtype=np.int64)[:, None]
    s = np.arange(size, dtype=np.int64)[None, :]
    lo = np.maximum(d * size, s * out)
    hi = np.minimum((d + 1) * size, (s + 1) * out)
    return np.maximum(hi - lo, 0)


def _cubic_weights(size: int, out: int) -> np.ndarray:
    """(out, size) int64: Keys' cubic convolution (a = -3/4, OpenCV's INTER_CUBIC) from ``size``
    pixels to ``out`` (more), pixel centres aligned, edges replicated, in units of 1 / (4 D^3)
    with D = 2 out: output d sits at (at / D) source pixels, at = (2d + 1) size - out, and a tap
    u / D away weighs 5u^3 - 9u^2 D + 4D^3 (u <= D) or -3u^3 + 15u^2 D - 24u D^2 + 12D^3."""
    big = 2 * out
    d = np.arange(out, dtype=np.int64)
    at = (2 * d + 1) * size - out
    first = at // big
    frac = at - first * big
    weights = np.zeros((out, size), np.int64)
    for tap, u in ((-1, big + frac), (0, frac), (1, big - frac), (2, 2 * big - frac)):
        near = 5 * u**3 - 9 * u**2 * big + 4 * big**3
        far = -3 * u**3 + 15 * u**2 * big - 24 * u * big**2 + 12 * big**3
        np.add.at(weights, (d, np.clip(first + tap, 0, size - 1)), np.where(u <= big, near, far))
    return weights


def fit_box(crop: np.ndarray) -> np.ndarray:
    """Cropped ink (any size, grey levels >= 0) -> its longer side at 20 px, the other side in
    proportion rounded half up, each side scaled to its whole number of pixels, then stretched
    so that the core of the strokes is white as in MNIST (40% of its ink pixels are at full
    white: the 60th percentile of the ink, the pixels above a tenth of the brightest, becomes 255).

    Shrinking is exact area averaging (anti-aliased, as MNIST; OpenCV's INTER_AREA); enlarging a
    crop under 20 px is Keys' cubic (OpenCV's INTER_CUBIC, which the bundled reader's negatives
    were made with: blocky area copies of small crops were refused more often), both in whole
    numbers."""
    crop = np.rint(np.clip(np.asarray(crop, np.float64), 0, 255))
    h, w = crop.shape
    longer = max(h, w)
    size = [max(1, (2 * DIGIT_BOX * n + longer) // (2 * longer)) for n in (h, w)]  # rounded half up
    weights = _cubic_weights if longer <= DIGIT_BOX else _area_weights
    # Whole numbers multiplied in doubles (BLAS, many times faster than integer matmul) stay
    # exact: every sum is under 2^53 (at most 255 (4 D^3)^2 for the cubic, 255 h w for areas).
    sums = (weights(h, size[0]).astype(np.float64) @ crop
            @ weights(w, size[1]).T.astype(np.float64))  # (size[0], size[1])
    sums = np.maximum(np.rint(sums).astype(np.int64), 0)
    top = int(sums.max())
    ink = np.sort(sums[10 * sums > top])
    level = int(ink[6 * (ink.size - 1) // 10]) if ink.size else 0
    if level <= 0:
        raise ImageError("blank image: no ink left after scaling", "blank")
    return np.minimum((sums * 510 + level) // (2 * level), 255).astype(np.uint8)


def centre_in_field(digit: np.ndarray) -> np.ndarray:
    """uint8 (h, w) with max(h, w) <= 20 -> (28, 28), centre of mass moved to (14, 14) by whole
    pixels (rounded half up)."""
    h, w = digit.shape
    field = np.zeros((FIELD, FIELD), np.int64)
    top, left = (FIELD - h) // 2, (FIELD - w) // 2
    field[top : top + h, left : left + w] = digit
    mass = int(field.sum())
    if mass <= 0:
        raise ImageError("blank image: no ink left after scaling", "blank")
    idx = np.arange(FIELD, dtype=np.int64)
    mx, my = int(field.sum(axis=0) @ idx), int(field.sum(axis=1) @ idx)
    dx = (FIELD * mass - 2 * mx + mass) // (2 * mass)  # round(14 - mx / mass)
    dy = (FIELD * mass - 2 * my + mass) // (2 * mass)
    out = np.zeros((FIELD, FIELD), np.uint8)
    ys = slice(max(0, dy), min(FIELD, FIELD + dy))
    xs = slice(max(0, dx), min(FIELD, FIELD + dx))
    out[ys, xs] = field[max(0, -dy) : min(FIELD, FIELD - dy), max(0, -dx) : min(FIELD, FIELD - dx)]
    return out


def _no_writing() -> ImageError:
    return ImageError("blank image: no writing found; photograph the digit darker or closer", "blank")


def mnist_from_ink(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """White-on-black grey image + its ink mask -> uint8 (28, 28) MNIST-style digit."""
    clean = clean_ink(ink, mask)
    ys, xs = np.nonzero(clean)
    if ys.size == 0:
        raise _no_writing()
    crop = clean[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return centre_in_field(fit_box(crop))


def main_cluster(mask: np.ndarray) -> np.ndarray:
    """The largest piece of ink (the first in reading order on ties) and the pieces near it (a
    digit's broken strokes); drops marks elsewhere on the page, which would stretch the digit's
    box. A piece joins when its box is within a quarter of the cluster's size of the cluster's
    box, until none does."""
    labels, stats = pieces(mask)
    if len(stats) <= 2:
        return mask.astype(bool)
    boxes = stats[1:, :4].astype(np.int64)  # x, y, w, h
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = np.flatnonzero(areas == areas.max())
    inside = np.zeros(len(boxes), bool)
    inside[min(largest, key=lambda k: _first_pixel(labels, stats, k + 1))] = True
    changed = True
    while changed:
        x0, y0 = boxes[inside, 0].min(), boxes[inside, 1].min()
        x1, y1 = (boxes[inside, 0] + boxes[inside, 2]).max(), (boxes[inside, 1] + boxes[inside, 3]).max()
        gap_x = np.maximum(0, np.maximum(x0 - (boxes[:, 0] + boxes[:, 2]), boxes[:, 0] - x1))
        gap_y = np.maximum(0, np.maximum(y0 - (boxes[:, 1] + boxes[:, 3]), boxes[:, 1] - y1))
        near = ~inside & (4 * np.maximum(gap_x, gap_y) <= max(x1 - x0, y1 - y0))
        inside |= near
        changed = bool(near.any())
    return np.concatenate([[False], inside])[labels]


def polarity(gray: np.ndarray, dark: bool | None = None) -> bool:
    """``dark`` when it is known (a drawing on the page's canvas), else judged from the picture
    (``paper.is_dark_on_light``)."""
    return paper.is_dark_on_light(gray) if dark is None else dark


def to_mnist(image: np.ndarray, dark: bool | None = None) -> np.ndarray:
    """Any decoded image (gray, BGR or BGRA, any size) of one digit -> uint8 (28, 28),
    white digit on black as in MNIST. Raises ImageError("blank") if there is no ink.
    ``dark``: the polarity when it is known (a drawing on the page's canvas), else judged."""
    return digit_and_ink(image, dark)[0]


def digit_and_ink(image: np.ndarray, dark: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``to_mnist``'s 28x28 digit, and a bool mask of all the ink on the copy the digit was
    found on (which tells whether the image held a whole number rather than one digit)."""
    gray = to_gray(image)
    return digit_in(gray, polarity(gray, dark))


def digit_in(gray: np.ndarray, dark: bool, zoomed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The steps of ``digit_and_ink`` after the polarity.

    The picture's ink is found on a copy at most ``WORK_SIDE`` px long (``find_ink``), and the
    digit (``main_cluster``) fitted into the 28x28 field. A digit under ``ZOOM_BELOW`` px long
    on that copy of a larger picture (a small digit on a page) is looked at again in a square
    around it, twice its size, cut from the picture itself: the same steps at the resolution
    the digit needs.
    """
    seen = find_ink(gray, dark, WORK_SIDE)
    found = main_cluster(seen.mask)
    ys, xs = np.nonzero(found)
    if ys.size == 0:
        raise _no_writing()
    longer = max(int(np.ptp(ys)), int(np.ptp(xs))) + 1
    factor = seen.factor
    if factor == 1 or zoomed or longer >= ZOOM_BELOW:
        return mnist_from_ink(seen.ink, found), seen.mask
    side = 2 * longer * factor  # in the picture's pixels
    (y0, y1), (x0, x1) = [_around(int(a.min()) * factor, (int(a.max()) + 1) * factor, side, n)
                          for a, n in ((ys, gray.shape[0]), (xs, gray.shape[1]))]
    return digit_in(gray[y0:y1, x0:x1], dark, zoomed=True)[0], seen.mask


def _around(lo: int, hi: int, side: int, size: int) -> tuple[int, int]:
    """[lo, hi) widened to ``side`` about its middle, within [0, size)."""
    start = (lo + hi - side) // 2
    return max(0, start), min(size, start + side)


# ---------------------------------------------------------------------------------------------
# From a file's bytes to the reader's input: the one path of predict, /api/predict and
# corrections (numbers: ``numbers.number_from_bytes``).


@dataclass(frozen=True)
class Digit:
    """One picture of a digit as the reader gets it."""

    picture: np.ndarray  # uint8 (H, W): the decoded grey picture (a JPEG scaled as it decoded)
    image28: np.ndarray  # uint8 (28, 28): what the network reads
    ink: np.ndarray  # bool (h, w): all the ink on the copy the digit was found on


def digit_from_bytes(data: bytes, source: str) -> Digit:
    """An image file's bytes -> its ``Digit``: decoded grey (a JPEG scaled down inside the
    decoder as far as ``DIGIT_PHOTO_SIDE`` allows), then ``digit_and_ink``. Every failure is an
    ImageError naming ``source``."""
    with opencv_errors(source):
        picture = decode(data, source, DIGIT_PHOTO_SIDE, gray=True)
        image28, ink = digit_and_ink(picture)
    return Digit(picture, image28, ink)
