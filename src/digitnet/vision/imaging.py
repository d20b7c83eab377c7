"""Real images (photos, scans, drawings) -> MNIST-style 28x28 digits.

MNIST digits are white on black, the ink's bounding box scaled to fit 20x20 with its aspect
ratio kept, anti-aliased grey edges, placed in a 28x28 field with the centre of mass in the
middle. A phone photo is the opposite on every count: dark ink on light, tinted and unevenly
lit paper, noise, any size and position. ``to_mnist`` repeats the MNIST authors' steps on it:

  decode -> grayscale (alpha flattened onto white) -> white-on-black, paper removed
  -> denoised mask by Otsu's threshold (grey levels kept for the image) -> specks dropped
  -> ink cropped -> longer side to 20 px (INTER_AREA) -> 28x28 field
  -> shifted so the centre of mass is in the middle.

It works at the resolution the answer needs: a large JPEG is scaled down inside the decoder,
the paper is studied and the digit found on small copies, and only the digit's crop, at most
``DIGIT_SIDE`` px long, is cleaned and measured.

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
# Connected pieces of ink smaller than this fraction of the largest piece are specks (dust,
# noise, paper grain); a broken stroke (the bar of a 5, the top of a 4) is far larger.
SPECK_FRACTION = 0.03
# Work at the resolution the answer needs. The digit is found on a copy at most LOCATE_SIDE
# px long (larger only when it is small there); the paper's polarity is judged on a copy
# whose shorter side, the one a digit or a line of digits spans, is at most POLARITY_SIDE,
# and its light estimated on one at most PAPER_SIDE (light varies slowly); the digit itself
# is cleaned on a crop at most DIGIT_SIDE long, far more than the 20 px it becomes.
LOCATE_SIDE = 128
POLARITY_SIDE = 48
PAPER_SIDE = 48
DIGIT_SIDE = 256
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
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if channels not in (2, 4):
        raise ImageError(f"images with {channels} channels are not supported", "not_image")
    gray = image[:, :, 0] if channels == 2 else cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if cv2.minMaxLoc(image[:, :, -1])[0] == 255:  # opaque, as the page's canvas: nothing to flatten
        return gray
    alpha = image[:, :, -1].astype(np.float32) / 255.0
    on_white = gray * alpha + 255.0 * (1.0 - alpha)
    if np.ptp(on_white) < MIN_CONTRAST and np.ptp(alpha) >= MIN_CONTRAST / 255.0:
        return np.round(gray * alpha).astype(np.uint8)
    return np.round(on_white).astype(np.uint8)


def _small(gray: np.ndarray, side: int, edge=max) -> np.ndarray:
    """A copy whose longer side (``edge=min``: shorter side) is at most ``side`` px, smaller by
    a whole factor: INTER_AREA then averages whole blocks of pixels (OpenCV's fast path,
    several times faster than a fractional one). Light and paper vary slowly and a digit is
    found in far fewer pixels than a phone takes."""
    factor = -(-edge(gray.shape) // side)  # ceil
    if factor == 1:
        return gray
    return cv2.resize(gray, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)


def is_dark_on_light(gray: np.ndarray) -> bool:
    """True if the ink is darker than the paper around it.

    The paper is the local median over a window wider than the digit (ink covers less than
    half of it), so a light gradient across the page does not matter. The ink is whichever side of it reaches
    further: the mean of the darkest 0.1% below the paper against the brightest 0.1% above
    it. A thin digit may cover only a fraction of a percent of a photo, and paper texture
    spreads wide but shallow, so only the extremes tell them apart.

    Judged on every n-th pixel, at most ``POLARITY_SIDE`` across the shorter side: unlike an
    averaged copy, a subsample keeps thin strokes at full strength and fine patterns of dots
    black and white.
    """
    step = -(-min(gray.shape) // POLARITY_SIDE)  # ceil
    small = np.ascontiguousarray(gray[::step, ::step])
    # as wide as the short side, hence wider than the digit: ink never fills half the window
    k = max(3, min(small.shape) - 1) | 1
    diff = (small.astype(np.float32) - cv2.medianBlur(small, k)).ravel()
    low, high = np.percentile(diff, [0.1, 99.9])
    # a tie (black and white marks alike, as a pattern of dots) goes to the usual dark ink
    return bool(-diff[diff <= low].mean() >= diff[diff >= high].mean())


def local_linear(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted local linear regression: at each pixel the value a + b*dx + c*dy that
    best fits the weighted neighbours. Unlike a weighted mean it is exact for a linear ramp
    of light, also at the picture's edges, where a mean only sees one side.

    float (H, W) values and weights (0 = unknown) -> float32 (H, W).
    """
    h, w = values.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = (ys - h / 2) / sigma, (xs - w / 2) / sigma  # scaled to keep the sums well conditioned
    wt = weight.astype(np.float32)
    wf = wt * values.astype(np.float32)
    # moments of the weights and data, all nine blurred in one call (channels last); zero
    # outside the picture: no invented data
    moments = cv2.GaussianBlur(np.dstack([wt, wt * xs, wt * ys, wt * xs * xs, wt * xs * ys, wt * ys * ys,
                                          wf, wf * xs, wf * ys]),
                               (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    s0, sx, sy, sxx, sxy, syy, f0, fx, fy = np.moveaxis(moments, -1, 0)
    # the normal equations in coordinates relative to each pixel: m (symmetric 3x3) @ (a, b, c) = r
    ridge = 1e-3 * s0 + 1e-9  # slopes fall back towards zero where data is one-sided or scarce
    m00 = s0 + 1e-9
    m01, m02 = sx - xs * s0, sy - ys * s0
    m11 = sxx - 2 * xs * sx + xs * xs * s0 + ridge
    m12 = sxy - xs * sy - ys * sx + xs * ys * s0
    m22 = syy - 2 * ys * sy + ys * ys * s0 + ridge
    r0, r1, r2 = f0, fx - xs * f0, fy - ys * f0
    # only a is needed: Cramer's rule on the first column, for every pixel at once (numpy's
    # batched solve costs more per 3x3 system than all the rest of the estimate)
    c00, c01, c02 = m11 * m22 - m12 * m12, m12 * m02 - m01 * m22, m01 * m12 - m11 * m02
    return (r0 * c00 + r1 * c01 + r2 * c02) / (m00 * c00 + m01 * c01 + m02 * c02)


def background(ink: np.ndarray) -> np.ndarray:
    """Estimate of the (white-on-black) image without its ink: the paper under uneven light.

    uint8 (H, W) -> float32 (h, w), on a copy whose shorter side is at most ``PAPER_SIDE`` px
    (light varies slowly; ``Paper.ground_at`` samples it at any size). A grey-level opening
    with a square wider than any stroke finds the ink (what rises above it by more than the
    noise); the paper is then a local linear fit to the pixels that are not ink. The opening
    alone lags behind light that falls off across the page and leaves bright rims along the
    picture's edges that look like strokes.
    """
    small = _small(ink, PAPER_SIDE, edge=min).astype(np.float32)
    # wider than any stroke: a digit is at most as tall as the short side, its strokes about
    # a tenth of its height
    k = max(3, round(0.3 * min(small.shape)))
    opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    rise = small - opened
    noise = 1.4826 * float(np.median(np.abs(rise - np.median(rise))))
    paper = (rise <= max(8.0, 3.0 * noise)).astype(np.uint8)
    paper = cv2.erode(paper, np.ones((3, 3), np.uint8))  # keep clear of the strokes' soft edges
    if paper.sum() < 0.05 * paper.size:  # (almost) all ink: nothing better than the opening
        return opened
    return local_linear(small, paper, max(1.5, k / 2)).clip(0, 255)


# A part of a picture as fractions of its width and height: (left, top, right, bottom).
Region = tuple[float, float, float, float]
WHOLE: Region = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class Paper:
    """What a picture's ink is seen against, learnt from a small copy of the whole picture:
    whether the ink is darker than the paper, and the ground under it (``background`` of the
    picture turned white-on-black). ``ink`` then turns any part of the picture, at any scale,
    into white ink on black."""

    dark: bool
    ground: np.ndarray  # float32 (h, w), shorter side at most PAPER_SIDE, over the whole picture

    def ink(self, gray: np.ndarray, region: Region = WHOLE) -> np.ndarray:
        """uint8 (H, W) gray showing ``region`` of the picture -> uint8 (H, W) white ink on
        black, paper and uneven light removed.

        For dark ink on paper the ink's strength is measured relative to the local paper
        brightness ((paper - pixel) / paper), so the same pen gives the same grey in the bright
        and the shadowed part of a photo; light ink on a dark ground has the ground's level
        subtracted.
        """
        shade = self.ground_at(region, gray.shape)
        if not self.dark:
            return np.clip(gray - shade + 0.5, 0, 255).astype(np.uint8)
        paper = 255.0 - shade  # how bright the paper is, per pixel
        ink = np.maximum(paper - gray, 0) * (255.0 / np.maximum(paper, 16.0))
        return np.clip(ink + 0.5, 0, 255).astype(np.uint8)

    def ground_at(self, region: Region, shape: tuple[int, int]) -> np.ndarray:
        """The ground over ``region`` sampled at ``shape`` (H, W): float32, bilinear, what
        resizing it to the whole picture and cropping would give, without the full-size copy."""
        gh, gw = self.ground.shape
        left, top, right, bottom = region
        h, w = shape
        # output pixel i (centre i + 0.5) -> ground pixel index (i + 0.5) * step + offset - 0.5
        sx, sy = (right - left) * gw / w, (bottom - top) * gh / h
        matrix = np.float32([[sx, 0, left * gw + 0.5 * sx - 0.5], [0, sy, top * gh + 0.5 * sy - 0.5]])
        return cv2.warpAffine(self.ground, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)


def study_paper(gray: np.ndarray) -> Paper:
    """uint8 (H, W) gray picture -> its ``Paper``, from small copies (polarity, ground)."""
    dark = is_dark_on_light(gray)
    small = _small(gray, PAPER_SIDE, edge=min)
    return Paper(dark, background(255 - small if dark else small))


def to_white_on_black(image: np.ndarray) -> np.ndarray:
    """Any image -> uint8 (H, W) white ink on a black background, paper and uneven light removed."""
    gray = to_gray(image)
    return study_paper(gray).ink(gray)


def _denoise(ink: np.ndarray) -> np.ndarray:
    """Median filter sized to the image (3 px up to ~500 px, 5 px above): removes sensor noise
    and JPEG ringing while keeping stroke edges."""
    return cv2.medianBlur(ink, 3 if max(ink.shape) <= 500 else 5)


def ink_threshold(smooth: np.ndarray) -> float:
    """Otsu's threshold computed on the pixels along strong edges.

    On a whole photo the ink is often under 1% of the pixels and Otsu's split lands inside
    the paper's texture; along the strokes' edges ink and paper are about equally many, which
    is the balanced case Otsu's method handles well.
    """
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    grad = cv2.magnitude(gx, gy)
    edges = grad >= 0.3 * grad.max()
    values = smooth[cv2.dilate(edges.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0]
    threshold, _ = cv2.threshold(values.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(threshold)


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """White-on-black image -> bool (H, W) mask of the ink: Otsu's threshold, specks dropped.

    Raises ImageError("blank") when nothing stands out from the background.
    """
    smooth = _denoise(ink)
    if np.ptp(smooth) < MIN_CONTRAST:
        raise ImageError("blank image: no writing stands out from the background; "
                         "photograph the digit darker or closer", "blank")
    threshold = ink_threshold(smooth)
    mask = (smooth > threshold).astype(np.uint8)
    fg, bg = smooth[mask > 0], smooth[mask == 0]
    if fg.size == 0 or bg.size == 0 or float(np.median(fg)) - float(np.median(bg)) < MIN_CONTRAST:
        raise ImageError("blank image: no writing stands out from the background; "
                         "photograph the digit darker or closer", "blank")
    return without_specks(mask)


def without_specks(mask: np.ndarray) -> np.ndarray:
    """bool or 0/1 (H, W) mask -> bool (H, W) without its specks: single pixels and pieces
    smaller than ``SPECK_FRACTION`` of the largest."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, bool)
    if areas.size:
        keep[1:] = areas >= max(2, SPECK_FRACTION * areas.max())
    return keep[labels]


def clean_ink(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The denoised grey levels of the ink, zero outside the mask grown by a stroke edge.

    Otsu's mask cuts through the anti-aliased edges of strokes; growing it a little keeps
    those grey edges (MNIST has them) without bringing back the background.
    """
    grown = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return np.where(grown > 0, _denoise(ink), 0).astype(np.uint8)


def centre_in_field(digit: np.ndarray) -> np.ndarray:
    """uint8 (h, w) with max(h, w) <= 20 -> (28, 28), centre of mass moved to (14, 14)."""
    h, w = digit.shape
    field = np.zeros((FIELD, FIELD), np.float32)
    top, left = (FIELD - h) // 2, (FIELD - w) // 2
    field[top : top + h, left : left + w] = digit
    m = cv2.moments(field)
    if m["m00"] <= 0:
        raise ImageError("blank image: no ink left after scaling", "blank")
    dx = FIELD / 2 - m["m10"] / m["m00"]
    dy = FIELD / 2 - m["m01"] / m["m00"]
    shift = np.float32([[1, 0, round(dx)], [0, 1, round(dy)]])
    return cv2.warpAffine(field, shift, (FIELD, FIELD), flags=cv2.INTER_NEAREST).astype(np.uint8)


def fit_box(crop: np.ndarray) -> np.ndarray:
    """Cropped ink (any size) -> longer side 20 px, aspect kept, INTER_AREA (anti-aliasing),
    then stretched so the core of the strokes is white as in MNIST."""
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    small = cv2.resize(crop.astype(np.float32), size, interpolation=interpolation)
    small = np.clip(small, 0, None)
    ink = small[small > 0.1 * small.max()] if small.max() > 0 else small
    # MNIST: about 40% of the ink pixels are at full white; stretch the 60th percentile to 255
    level = float(np.percentile(ink, 60)) if ink.size else 0.0
    if level <= 0:
        raise ImageError("blank image: no ink left after scaling", "blank")
    return np.clip(small * (255.0 / level), 0, 255).round().astype(np.uint8)


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
    """The largest piece of ink and the pieces near it (a digit's broken strokes); drops
    marks elsewhere on the page, which would stretch the digit's box.

    A piece joins when its box is within a quarter of the cluster's size of the cluster's box.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    boxes = stats[1:, :4].astype(np.int64)  # x, y, w, h
    inside = np.zeros(count - 1, bool)
    inside[np.argmax(stats[1:, cv2.CC_STAT_AREA])] = True
    changed = True
    while changed:
        x0, y0 = boxes[inside, 0].min(), boxes[inside, 1].min()
        x1, y1 = (boxes[inside, 0] + boxes[inside, 2]).max(), (boxes[inside, 1] + boxes[inside, 3]).max()
        reach = max(x1 - x0, y1 - y0) / 4
        gap_x = np.maximum(0, np.maximum(x0 - (boxes[:, 0] + boxes[:, 2]), boxes[:, 0] - x1))
        gap_y = np.maximum(0, np.maximum(y0 - (boxes[:, 1] + boxes[:, 3]), boxes[:, 1] - y1))
        near = ~inside & (np.maximum(gap_x, gap_y) <= reach)
        inside |= near
        changed = bool(near.any())
    return np.concatenate([[False], inside])[labels]


def find_digit(gray: np.ndarray, paper: Paper) -> tuple[np.ndarray, np.ndarray]:
    """The ink of the digit (``main_cluster``) as a bool mask on the smallest copy of ``gray``,
    from ``LOCATE_SIDE`` px long up by 4x, on which it is at least ``DIGIT_BOX`` px long (or
    on ``gray`` itself), and the mask of all the ink on that copy. Raises ImageError("blank")
    when there is no ink."""
    side = LOCATE_SIDE
    while True:
        small = _small(gray, side)
        whole = small.shape == gray.shape
        try:
            ink_all = ink_mask(paper.ink(small))
        except ImageError:
            if whole:
                raise
            ink_all = np.zeros(small.shape, bool)  # too faint on this copy: look closer
        found = main_cluster(ink_all)
        ys, xs = np.nonzero(found)
        # a digit smaller than this on the copy may be specks of a large picture's small digit
        if ys.size and (whole or max(np.ptp(ys), np.ptp(xs)) + 1 >= DIGIT_BOX):
            return found, ink_all
        if whole:
            raise _no_writing()
        side *= 4


def digit_view(gray: np.ndarray, found: np.ndarray) -> tuple[Region, np.ndarray, np.ndarray]:
    """The part of ``gray`` (H, W) around the ink ``found`` (bool (h, w), on a copy at most as
    large), at most ``DIGIT_SIDE`` px long: (its region, uint8 (H', W') view of it, bool
    (H', W') where the copy found the digit, grown by its two pixels of margin)."""
    h, w = found.shape
    ys, xs = np.nonzero(found)
    # two pixels of the copy around its mask: the mask misses the strokes' faintest edges
    sx0, sx1 = max(0, xs.min() - 2), min(w, xs.max() + 3)
    sy0, sy1 = max(0, ys.min() - 2), min(h, ys.max() + 3)
    height, width = gray.shape
    x0, x1 = int(sx0 / w * width), int(np.ceil(sx1 / w * width))
    y0, y1 = int(sy0 / h * height), int(np.ceil(sy1 / h * height))
    view = _small(gray[y0:y1, x0:x1], DIGIT_SIDE)
    grown = cv2.dilate(found[sy0:sy1, sx0:sx1].astype(np.uint8), np.ones((5, 5), np.uint8))
    near = cv2.resize(grown, (view.shape[1], view.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return (x0 / width, y0 / height, x1 / width, y1 / height), view, near


def to_mnist(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR or BGRA, any size) of one digit -> uint8 (28, 28),
    white digit on black as in MNIST. Raises ImageError("blank") if there is no ink."""
    return digit_and_ink(image)[0]


def digit_and_ink(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``to_mnist``'s 28x28 digit, and a bool mask of all the ink on the copy the digit was
    found on (which tells whether the image held a whole number rather than one digit).

    The paper is studied and the digit found on small copies (``find_digit``); the digit is
    then cropped from the image at a scale where it is at most ``DIGIT_SIDE`` px long
    (``digit_view``), and only that crop is thresholded and cleaned.
    """
    gray = to_gray(image)
    paper = study_paper(_small(gray, LOCATE_SIDE))
    found, ink_all = find_digit(gray, paper)
    if found.shape == gray.shape:  # found on the picture itself: there is nothing finer to see
        return mnist_from_ink(paper.ink(gray), found), ink_all
    region, view, near = digit_view(gray, found)
    ink = paper.ink(view, region)
    # The crop's own threshold, as its edges are the digit's, but kept to where the copy found
    # the digit: a crop that is nearly all digit can put Otsu's split at the faintest grey,
    # and whether there is writing at all was judged on the whole picture.
    smooth = _denoise(ink)
    return mnist_from_ink(ink, without_specks((smooth > ink_threshold(smooth)) & near)), ink_all
