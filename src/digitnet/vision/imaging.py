"""Real images (photos, scans, drawings) -> MNIST-style 28x28 digits.

MNIST digits are white on black, the ink's bounding box scaled to fit 20x20 with its aspect
ratio kept, anti-aliased grey edges, placed in a 28x28 field with the centre of mass in the
middle. A phone photo is the opposite on every count: dark ink on light, tinted and unevenly
lit paper, noise, any size and position. ``to_mnist`` repeats the MNIST authors' steps on it:

  decode -> grayscale (alpha flattened onto white) -> polarity -> a copy at most 512 px long
  -> white-on-black, paper removed -> denoised mask by Otsu's threshold (grey levels kept for
  the image) -> specks and far marks dropped (a small digit: the same again, closer)
  -> ink cropped -> longer side to 20 px (exact area averaging) -> 28x28 field
  -> shifted so the centre of mass is in the middle.

The algorithm (``PREPROCESS_VERSION``) is computed in whole numbers, so that the web page's
reader/imaging.js repeats it to the byte; numbers (``numbers``) share its steps up to the mask.

``decode`` refuses what is not an image, what is truncated and what is too large (the size is
read from the file header before any pixel is decoded, so a small file that would expand to
gigabytes is refused without expanding it).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from digitnet.errors import DigitnetError

# Names the algorithm from gray pixels to the 28x28 digit; the page's reader/imaging.js says which
# one it implements and refuses a model made with another (model.json records this).
PREPROCESS_VERSION = "digitnet-preprocess-2"
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
# Work at the resolution the answer needs. The digit is found and cleaned on a copy at most
# WORK_SIDE px long (far more than the 20 px it becomes), looked at again closer when it is under
# ZOOM_BELOW px there; the paper's polarity is judged on a subsample whose shorter side, the one
# a digit or a line of digits spans, is at most POLARITY_SIDE, and its light estimated on a copy
# at most PAPER_SIDE across (light varies slowly).
WORK_SIDE = 512
ZOOM_BELOW = 64
POLARITY_SIDE = 48
PAPER_SIDE = 48
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
    if not data:
        raise ImageError(f"{source}: empty file; {FORMATS_HINT}", "not_image")
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


def load(path: str | Path, min_side: int | None = None, gray: bool = False) -> np.ndarray:
    """Read and ``decode`` an image file; every failure is one line naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file; give the image files in it",
                         "not_image")
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise DigitnetError(f"{path}: no such file; check the path") from e
    except PermissionError as e:
        raise DigitnetError(f"{path}: permission denied; make the file readable") from e
    except OSError as e:
        raise DigitnetError(f"{path}: cannot read it ({e.strerror or e}); check the file") from e
    return decode(data, str(path), min_side, gray)


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
# The steps from gray pixels to the 28x28 digit. Every grey level below is computed with whole
# numbers (block sums, minima and maxima, medians, counts) or with one IEEE double operation at a
# time in a fixed order, so reader/imaging.js repeats it to the byte: tests/js checks it on
# fixtures written by scripts/preprocess_fixtures.py.


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def block_mean(gray: np.ndarray, factor: int) -> np.ndarray:
    """uint8 (H, W) -> uint8 (ceil(H/f), ceil(W/f)): the mean of each f x f block (the blocks
    on the right and bottom edges may be smaller), rounded half up. A whole factor keeps the
    arithmetic exact; averaging, unlike subsampling, keeps every pixel's ink."""
    if factor == 1:
        return gray
    h, w = gray.shape
    bh, bw = _ceil_div(h, factor), _ceil_div(w, factor)
    padded = np.zeros((bh * factor, bw * factor), np.int64)
    padded[:h, :w] = gray
    sums = padded.reshape(bh, factor, bw, factor).sum(axis=(1, 3))
    rows = np.minimum(factor, h - factor * np.arange(bh))  # pixels per block, down and across
    cols = np.minimum(factor, w - factor * np.arange(bw))
    counts = rows[:, None] * cols[None, :]
    return ((sums + counts // 2) // counts).astype(np.uint8)


def _shrink(gray: np.ndarray, side: int, edge=max) -> tuple[np.ndarray, int]:
    """``block_mean`` by the smallest whole factor that brings the longer (``edge=min``:
    shorter) side to at most ``side`` px: (copy, factor)."""
    factor = max(1, _ceil_div(edge(gray.shape), side))
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
    g = small.astype(np.int64)
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
    step = _ceil_div(min(gray.shape), POLARITY_SIDE)
    small = np.ascontiguousarray(gray[::step, ::step])
    k = max(3, min(small.shape) - 1) | 1
    diff = np.sort((small.astype(np.int32) - cv2.medianBlur(small, k)).ravel())
    extreme = _ceil_div(diff.size, 1000)
    return bool(-diff[:extreme].sum() >= diff[-extreme:].sum())


def white_on_black(gray: np.ndarray, dark: bool) -> np.ndarray:
    """uint8 (H, W) gray and its polarity -> uint8 (H, W) white ink on black, paper and uneven
    light removed.

    The ground (the picture without its ink) is the median over a window as wide as the
    picture's short side, on a copy at most ``PAPER_SIDE`` px across its shorter side (light
    varies slowly; averaging also quiets the paper's grain), brought back to full size
    bilinearly. Ink covers far less than half of such a window, and a median follows light that
    falls off across the page. (A window twice as wide lost 1 point of harsh photos: it cannot
    follow uneven light and blotchy paper.) Dark ink is
    measured relative to the paper under it ((paper - pixel) / paper), so the same pen gives the
    same grey in the bright and the shadowed part of a photo; light ink on a dark ground has the
    ground subtracted.
    """
    inverted = 255 - gray if dark else gray
    small, factor = _shrink(inverted, PAPER_SIDE, edge=min)
    window = min(small.shape) | 1
    ground = upsample(cv2.medianBlur(small, max(3, window)), factor, gray.shape).astype(np.int32)
    rise = np.maximum(inverted.astype(np.int32) - ground, 0)
    if not dark:
        return rise.astype(np.uint8)
    paper = np.maximum(255 - ground, 16)  # how bright the paper is, per pixel
    return np.minimum((rise * 255 + paper // 2) // paper, 255).astype(np.uint8)


def to_white_on_black(image: np.ndarray) -> np.ndarray:
    """Any image -> uint8 (H, W) white ink on a black background, paper and uneven light removed."""
    gray = to_gray(image)
    return white_on_black(gray, is_dark_on_light(gray))


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
    gx = cv2.Sobel(smooth, cv2.CV_16S, 1, 0, ksize=3).astype(np.int64)
    gy = cv2.Sobel(smooth, cv2.CV_16S, 0, 1, ksize=3).astype(np.int64)
    strength = gx * gx + gy * gy
    edges = 100 * strength >= 9 * strength.max()
    near = cv2.dilate(edges.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return otsu(np.bincount(smooth[near], minlength=256))


def _lower_median(values: np.ndarray) -> int:
    return int(np.partition(values, (values.size - 1) // 2)[(values.size - 1) // 2])


def _blank() -> ImageError:
    return ImageError("blank image: no writing stands out from the background; "
                      "photograph the digit darker or closer", "blank")


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """White-on-black image -> bool (H, W) mask of the ink: the denoised image above Otsu's
    threshold, specks dropped. Raises ImageError("blank") when nothing stands out."""
    smooth = denoise(ink)
    if int(smooth.max()) - int(smooth.min()) < MIN_CONTRAST:
        raise _blank()
    mask = smooth > ink_threshold(smooth)
    fg, bg = smooth[mask], smooth[~mask]
    if fg.size == 0 or bg.size == 0 or _lower_median(fg) - _lower_median(bg) < MIN_CONTRAST:
        raise _blank()
    return without_specks(mask)


def _pieces(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-connected pieces of a mask: (labels (H, W), stats (n + 1, 5) as OpenCV's, the raster
    index of each piece's first pixel (n + 1,), which orders pieces the same in any language)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    found, first = np.unique(labels.ravel(), return_index=True)
    order = np.full(len(stats), -1, np.int64)
    order[found] = first
    return labels, stats, order


def without_specks(mask: np.ndarray) -> np.ndarray:
    """bool or 0/1 (H, W) mask -> bool (H, W) without its specks: single pixels and pieces
    smaller than ``SPECK_PERCENT`` of the largest."""
    labels, stats, _ = _pieces(mask)
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


def _area_weights(size: int, out: int, longer: int) -> np.ndarray:
    """(out, size) int64: how much of source pixel s output pixel d covers, in 1/20ths of a
    pixel, when ``longer`` source pixels become ``DIGIT_BOX``: d spans [d L, (d + 1) L) and s
    spans [20 s, 20 s + 20) in those units."""
    d = np.arange(out, dtype=np.int64)[:, None]
    s = np.arange(size, dtype=np.int64)[None, :]
    lo = np.maximum(d * longer, DIGIT_BOX * s)
    hi = np.minimum((d + 1) * longer, DIGIT_BOX * (s + 1))
    return np.maximum(hi - lo, 0)


def fit_box(crop: np.ndarray) -> np.ndarray:
    """Cropped ink (any size, grey levels >= 0) -> its longer side at 20 px, aspect kept, by
    exact area averaging (anti-aliased, as MNIST), then stretched so that the core of the
    strokes is white as in MNIST (40% of its ink pixels are at full white: the 60th percentile
    of the ink, the pixels above a tenth of the brightest, becomes 255)."""
    crop = np.rint(np.clip(np.asarray(crop, np.float64), 0, 255)).astype(np.int64)
    h, w = crop.shape
    longer = max(h, w)
    size = [max(1, (2 * DIGIT_BOX * n + longer) // (2 * longer)) for n in (h, w)]  # rounded half up
    # output sums in (1/20 px)^2 units: an output pixel's mean is its sum / longer^2
    sums = _area_weights(h, size[0], longer) @ crop @ _area_weights(w, size[1], longer).T
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
    labels, stats, first = _pieces(mask)
    if len(stats) <= 2:
        return mask.astype(bool)
    boxes = stats[1:, :4].astype(np.int64)  # x, y, w, h
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = np.flatnonzero(areas == areas.max())
    inside = np.zeros(len(boxes), bool)
    inside[largest[np.argmin(first[1:][largest])]] = True
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


def to_mnist(image: np.ndarray, dark: bool | None = None) -> np.ndarray:
    """Any decoded image (gray, BGR or BGRA, any size) of one digit -> uint8 (28, 28),
    white digit on black as in MNIST. Raises ImageError("blank") if there is no ink.
    ``dark``: the polarity when it is known (a drawing on the page's canvas), else judged."""
    return digit_and_ink(image, dark)[0]


def digit_and_ink(image: np.ndarray, dark: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``to_mnist``'s 28x28 digit, and a bool mask of all the ink on the copy the digit was
    found on (which tells whether the image held a whole number rather than one digit)."""
    gray = to_gray(image)
    return digit_in(gray, is_dark_on_light(gray) if dark is None else dark)


def digit_in(gray: np.ndarray, dark: bool, zoomed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The steps of ``digit_and_ink`` after the polarity.

    The picture is averaged down by a whole factor to at most ``WORK_SIDE`` px long, turned
    into white ink on black, thresholded, and the digit (``main_cluster``) fitted into the
    28x28 field. A digit under ``ZOOM_BELOW`` px long on that copy of a larger picture (a small
    digit on a page) is looked at again in a square around it, twice its size, cut from the
    picture itself: the same steps at the resolution the digit needs.
    """
    view, factor = _shrink(gray, WORK_SIDE)
    ink = white_on_black(view, dark)
    mask = ink_mask(ink)
    found = main_cluster(mask)
    ys, xs = np.nonzero(found)
    if ys.size == 0:
        raise _no_writing()
    longer = max(int(np.ptp(ys)), int(np.ptp(xs))) + 1
    if factor == 1 or zoomed or longer >= ZOOM_BELOW:
        return mnist_from_ink(ink, found), mask
    side = 2 * longer * factor  # in the picture's pixels
    (y0, y1), (x0, x1) = [_around(int(a.min()) * factor, (int(a.max()) + 1) * factor, side, n)
                          for a, n in ((ys, gray.shape[0]), (xs, gray.shape[1]))]
    return digit_in(gray[y0:y1, x0:x1], dark, zoomed=True)[0], mask


def _around(lo: int, hi: int, side: int, size: int) -> tuple[int, int]:
    """[lo, hi) widened to ``side`` about its middle, within [0, size)."""
    start = (lo + hi - side) // 2
    return max(0, start), min(size, start + side)
