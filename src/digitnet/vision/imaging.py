"""Real images (photos, scans, drawings) -> MNIST-style 28x28 digits.

MNIST digits are white on black, the ink's bounding box scaled to fit 20x20 with its aspect
ratio kept, anti-aliased grey edges, placed in a 28x28 field with the centre of mass in the
middle. A phone photo is the opposite on every count: dark ink on light, tinted and unevenly
lit paper, noise, any size and position. ``to_mnist`` repeats the MNIST authors' steps on it:

  decode -> grayscale (alpha flattened onto white) -> white-on-black, paper removed
  -> denoised mask by Otsu's threshold (grey levels kept for the image) -> specks dropped
  -> ink cropped at full resolution -> longer side to 20 px (INTER_AREA) -> 28x28 field
  -> shifted so the centre of mass is in the middle.

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


def _is_complete(data: bytes, fmt: str) -> bool:
    """False if a PNG or JPEG ends early or fails its checks (OpenCV's libpng would print
    its complaint on stderr; its JPEG reader may pad a cut-off photo with grey).

    PNGs: ``verify`` walks the chunks and their CRCs without inflating pixels. JPEGs are
    decoded in draft mode (DCT scaling to 1/8), which reads every entropy-coded byte at a
    fraction of a full decode's cost. Other formats are left to OpenCV, which fails cleanly.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                if fmt == "PNG":
                    im.verify()
                elif fmt in ("JPEG", "MPO"):
                    im.draft("L", (max(1, im.width // 8), max(1, im.height // 8)))
                    im.load()
    except (OSError, SyntaxError, ValueError, EOFError):
        return False
    return True


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


def decode(data: bytes, source: str = "image") -> np.ndarray:
    """Image bytes -> uint8 (H, W) gray, (H, W, 3) BGR or (H, W, 4) BGRA, upright.

    The size comes from the header first (refused above ``MAX_PIXELS`` before decoding);
    OpenCV then decodes with ``IMREAD_UNCHANGED`` (16-bit becomes 8-bit) and the EXIF
    orientation is applied. ``source`` names the input in error messages.
    """
    if not data:
        raise ImageError(f"{source}: empty file; {FORMATS_HINT}", "not_image")
    fmt, _, _ = _header(data, source)
    if not _is_complete(data, fmt):
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
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return _UPRIGHT.get(_orientation(data, fmt), lambda a: a)(image)


def load(path: str | Path) -> np.ndarray:
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
    return decode(data, str(path))


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
    gray = image[:, :, 0] if channels == 2 else cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)
    alpha = image[:, :, -1].astype(np.float32) / 255.0
    on_white = gray * alpha + 255.0 * (1.0 - alpha)
    if np.ptp(on_white) < MIN_CONTRAST and np.ptp(alpha) >= MIN_CONTRAST / 255.0:
        return np.round(gray * alpha).astype(np.uint8)
    return np.round(on_white).astype(np.uint8)


def _small(gray: np.ndarray, side: int) -> np.ndarray:
    """A copy at most ``side`` px long (INTER_AREA): light and paper vary slowly, so their
    estimates need no more, and big kernels at full resolution would be slow."""
    h, w = gray.shape
    scale = min(1.0, side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def is_dark_on_light(gray: np.ndarray) -> bool:
    """True if the ink is darker than the paper around it.

    The paper is the local median over a window wider than the digit (ink covers less than
    half of it), so a light gradient across the page does not matter. The ink is whichever side of it reaches
    further: the mean of the darkest 0.1% below the paper against the brightest 0.1% above
    it. A thin digit may cover only a fraction of a percent of a photo, and paper texture
    spreads wide but shallow, so only the extremes tell them apart.
    """
    small = _small(gray, 256)
    # as wide as the short side, hence wider than the digit: ink never fills half the window
    k = max(3, min(small.shape) - 1) | 1
    diff = (small.astype(np.float32) - cv2.medianBlur(small, k)).ravel()
    low, high = np.percentile(diff, [0.1, 99.9])
    return bool(-diff[diff <= low].mean() > diff[diff >= high].mean())


def local_linear(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted local linear regression: at each pixel the value a + b*dx + c*dy that
    best fits the weighted neighbours. Unlike a weighted mean it is exact for a linear ramp
    of light, also at the picture's edges, where a mean only sees one side.

    float (H, W) values and weights (0 = unknown) -> float64 (H, W).
    """
    h, w = values.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    ys, xs = (ys - h / 2) / sigma, (xs - w / 2) / sigma  # scaled to keep the sums well conditioned

    def smooth(a: np.ndarray) -> np.ndarray:  # zero outside the picture: no invented data
        return cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)

    wt = weight.astype(np.float64)
    f = values.astype(np.float64)
    # moments of the weights and data about each pixel (coordinates relative to the pixel)
    s0, sx, sy = smooth(wt), smooth(wt * xs), smooth(wt * ys)
    sxx, sxy, syy = smooth(wt * xs * xs), smooth(wt * xs * ys), smooth(wt * ys * ys)
    f0, fx, fy = smooth(wt * f), smooth(wt * f * xs), smooth(wt * f * ys)
    m = np.empty((h, w, 3, 3))
    m[..., 0, 0] = s0
    m[..., 0, 1] = m[..., 1, 0] = sx - xs * s0
    m[..., 0, 2] = m[..., 2, 0] = sy - ys * s0
    m[..., 1, 1] = sxx - 2 * xs * sx + xs * xs * s0
    m[..., 1, 2] = m[..., 2, 1] = sxy - xs * sy - ys * sx + xs * ys * s0
    m[..., 2, 2] = syy - 2 * ys * sy + ys * ys * s0
    rhs = np.stack([f0, fx - xs * f0, fy - ys * f0], axis=-1)
    ridge = 1e-3 * (s0 + 1e-9)  # slopes fall back towards zero where data is one-sided or scarce
    m[..., 1, 1] += ridge
    m[..., 2, 2] += ridge
    m[..., 0, 0] += 1e-9
    return np.linalg.solve(m, rhs[..., None])[..., 0, 0]


def background(ink: np.ndarray) -> np.ndarray:
    """Estimate of the (white-on-black) image without its ink: the paper under uneven light.

    Runs on a copy at most 128 px long (light varies slowly). A grey-level opening with a
    square wider than any stroke finds the ink (what rises above it by more than the noise);
    the paper is then a local linear fit to the pixels that are not ink. The opening alone
    lags behind light that falls off across the page and leaves bright rims along the
    picture's edges that look like strokes.
    """
    h, w = ink.shape
    small = _small(ink, 128).astype(np.float32)
    # wider than any stroke: a digit is at most as tall as the short side, its strokes about
    # a tenth of its height
    k = max(3, round(0.3 * min(small.shape)))
    opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    rise = small - opened
    noise = 1.4826 * float(np.median(np.abs(rise - np.median(rise))))
    paper = (rise <= max(8.0, 3.0 * noise)).astype(np.uint8)
    paper = cv2.erode(paper, np.ones((3, 3), np.uint8))  # keep clear of the strokes' soft edges
    if paper.sum() < 0.05 * paper.size:  # (almost) all ink: nothing better than the opening
        estimate = opened
    else:
        estimate = local_linear(small, paper, max(1.5, k / 2)).astype(np.float32)
    return cv2.resize(estimate, (w, h), interpolation=cv2.INTER_LINEAR).clip(0, 255).astype(np.uint8)


def to_white_on_black(image: np.ndarray) -> np.ndarray:
    """Any image -> uint8 (H, W) white ink on a black background, paper and uneven light removed.

    Polarity comes from ``is_dark_on_light``. For dark ink on paper the ink's strength is
    measured relative to the local paper brightness ((paper - pixel) / paper), so the same pen
    gives the same grey in the bright and the shadowed part of a photo; light ink on a dark
    ground has the ground's level subtracted.
    """
    gray = to_gray(image)
    if not is_dark_on_light(gray):
        return cv2.subtract(gray, background(gray))
    inverted = 255 - gray
    shade = background(inverted)  # how far below white the paper is, per pixel
    paper = (255 - shade.astype(np.float32))
    ink = cv2.subtract(inverted, shade).astype(np.float32) * (255.0 / np.maximum(paper, 16.0))
    return np.clip(ink + 0.5, 0, 255).astype(np.uint8)


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
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, bool)
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


def mnist_from_ink(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """White-on-black grey image + its ink mask -> uint8 (28, 28) MNIST-style digit."""
    clean = clean_ink(ink, mask)
    ys, xs = np.nonzero(clean)
    if ys.size == 0:
        raise ImageError("blank image: no writing found; photograph the digit darker or closer",
                         "blank")
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


def to_mnist(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR or BGRA, any size) of one digit -> uint8 (28, 28),
    white digit on black as in MNIST. Raises ImageError("blank") if there is no ink."""
    ink = to_white_on_black(image)
    return mnist_from_ink(ink, main_cluster(ink_mask(ink)))
