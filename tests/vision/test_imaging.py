"""Real-image preprocessing: decoding every common format safely, and MNIST-style 28x28 output."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from digitnet.errors import DigitnetError
from digitnet.vision import imaging, paper, render


def encode(image: np.ndarray, ext: str, *params: int) -> bytes:
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


def drawn_seven(size: int = 200, ink: int = 30, paper: int = 235, thickness: int = 12) -> np.ndarray:
    """uint8 (size, size): a 7 drawn with two OpenCV strokes, dark on light."""
    image = np.full((size, size), paper, np.uint8)
    s = size / 200
    cv2.line(image, (int(60 * s), int(50 * s)), (int(140 * s), int(50 * s)), ink, int(thickness * s))
    cv2.line(image, (int(140 * s), int(50 * s)), (int(85 * s), int(160 * s)), ink, int(thickness * s))
    return image


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def shifted_mad(a: np.ndarray, b: np.ndarray) -> float:
    """``mad`` of the two images after the best shift of at most one pixel either way."""
    return min(mad(np.roll(a, (dy, dx), axis=(0, 1)), b) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


# --- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff", ".webp"])
def test_decode_reads_every_common_format_in_colour_and_gray(ext):
    gray = drawn_seven()
    colour = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    for image in (gray, colour):
        decoded = imaging.decode(encode(image, ext))
        assert decoded.dtype == np.uint8 and decoded.shape[:2] == gray.shape
        assert mad(imaging.to_gray(decoded), gray) < 3  # lossy formats differ a little
        assert mad(imaging.decode(encode(image, ext), gray=True), gray) < 3


def test_decode_keeps_alpha_and_converts_16_bit():
    bgra = np.zeros((50, 60, 4), np.uint8)
    bgra[..., 3] = 255
    assert imaging.decode(encode(bgra, ".png")).shape == (50, 60, 4)
    deep = (np.arange(50 * 60, dtype=np.uint16).reshape(50, 60) * 20)
    for ext in (".png", ".tiff"):
        decoded = imaging.decode(encode(deep, ext))
        assert decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, (deep >> 8).astype(np.uint8))


def test_alpha_is_flattened_onto_white_and_light_strokes_on_transparency_still_show():
    seven = drawn_seven()
    on_white = imaging.to_mnist(seven)
    dark_strokes = np.zeros((200, 200, 4), np.uint8)  # black ink, transparent elsewhere
    dark_strokes[..., 3] = 255 - seven
    assert mad(imaging.to_mnist(imaging.decode(encode(dark_strokes, ".png"))), on_white) < 4
    light_strokes = dark_strokes.copy()
    light_strokes[..., :3] = 255  # white ink on transparency: invisible on white, kept on black
    assert mad(imaging.to_mnist(light_strokes), on_white) < 4


def test_exif_orientation_turns_phone_photos_upright():
    upright = drawn_seven()
    stored = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)  # as a phone held sideways stores it
    exif = Image.Exif()
    exif[imaging.EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=95, exif=exif)
    assert mad(imaging.decode(buf.getvalue()), upright) < 3


def test_large_jpegs_are_decoded_scaled_down_upright_and_still_checked():
    stored = cv2.rotate(drawn_seven(1200)[:900], cv2.ROTATE_90_COUNTERCLOCKWISE)  # (1200, 900)
    exif = Image.Exif()
    exif[imaging.EXIF_ORIENTATION] = 6
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=90, exif=exif)
    data = buf.getvalue()
    full = imaging.decode(data)
    assert full.shape == (900, 1200)  # upright
    reduced = imaging.decode(data, min_side=300)
    assert reduced.shape == (225, 300)  # 1/4, the most that keeps 300 px
    assert imaging.decode(data, min_side=500).shape == (450, 600)  # 1/2
    small = cv2.resize(full, (300, 225), interpolation=cv2.INTER_AREA)
    assert mad(reduced, small) < 3
    colour = cv2.cvtColor(stored, cv2.COLOR_GRAY2BGR)
    colour[..., 2] = 255 - colour[..., 2]  # red where the seven is dark: its grey is not its blue
    ok, coloured = cv2.imencode(".jpg", colour, [cv2.IMWRITE_JPEG_QUALITY, 90])
    luma = imaging.decode(coloured.tobytes(), min_side=300, gray=True)  # the luma plane alone
    assert luma.shape == (300, 225)
    assert mad(luma, imaging.to_gray(imaging.decode(coloured.tobytes(), min_side=300))) < 2
    # the two scales may place the digit a whole pixel apart (its centre of mass rounds differently)
    assert shifted_mad(imaging.to_mnist(reduced), imaging.to_mnist(full)) < 6
    with pytest.raises(imaging.ImageError) as e:  # a cut-off file is found while scaling too
        imaging.decode(data[: len(data) // 2], "cut.jpg", min_side=300)
    assert e.value.kind == "corrupt"


def test_not_an_image_and_empty_bytes_are_not_image():
    for data in (b"", b"hello, these are not pixels\n" * 20, b"%PDF-1.7\n"):
        with pytest.raises(imaging.ImageError) as e:
            imaging.decode(data, "x.png")
        assert e.value.kind == "not_image" and "x.png" in str(e.value)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff", ".webp"])
def test_truncated_files_are_corrupt(ext, capfd):
    data = encode(cv2.cvtColor(drawn_seven(), cv2.COLOR_GRAY2BGR), ext)
    for cut in (len(data) // 2, len(data) - 10):
        with pytest.raises(imaging.ImageError) as e:
            imaging.decode(data[:cut], "photo")
        assert e.value.kind == "corrupt" and "\n" not in str(e.value)
    assert capfd.readouterr().err == ""  # no decoder chatter on stderr, only our one line


def test_too_large_is_refused_from_the_header_without_decoding():
    bomb = png_header_only(10_000, 5_000)  # 50 megapixels claimed by a file of ~100 bytes
    assert len(bomb) < 200
    with pytest.raises(imaging.ImageError) as e:
        imaging.decode(bomb, "bomb.png")
    assert e.value.kind == "too_large" and "50.0 megapixels" in str(e.value)
    with pytest.raises(imaging.ImageError) as e:  # beyond Pillow's own bomb limit too
        imaging.decode(png_header_only(30_000, 30_000), "huge.png")
    assert e.value.kind == "too_large"


def test_load_names_the_file_for_missing_files_and_directories(tmp_path):
    with pytest.raises(DigitnetError, match="nope.png: no such file"):
        imaging.load(tmp_path / "nope.png")
    with pytest.raises(imaging.ImageError, match="is a directory") as e:
        imaging.load(tmp_path)
    assert e.value.kind == "not_image"


# --- to_mnist ---------------------------------------------------------------------------------


def test_to_mnist_follows_the_mnist_format():
    out = imaging.to_mnist(drawn_seven())
    assert out.shape == (28, 28) and out.dtype == np.uint8
    ys, xs = np.nonzero(out)
    assert max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == 20  # longer side 20 px
    assert out.max() == 255 and out[0].max() == 0  # white ink on black
    m = cv2.moments(out.astype(np.float32))
    assert abs(m["m10"] / m["m00"] - 14) <= 0.5 and abs(m["m01"] / m["m00"] - 14) <= 0.5


def test_clean_mnist_digits_come_back_in_either_polarity(mnist):
    # Round trip of 100 test digits, white-on-black and inverted: measured mean 6.4 grey
    # levels (of 255) at 1x and 9.1 scaled 4x, against 39.7 between two different digits.
    x = mnist.x_test[:100]
    assert np.mean([mad(imaging.to_mnist(d), d) for d in x]) < 8
    assert np.mean([mad(imaging.to_mnist(255 - d), d) for d in x]) < 8
    big = [cv2.resize(255 - d, (112, 112), interpolation=cv2.INTER_CUBIC) for d in x]
    assert np.mean([mad(imaging.to_mnist(b), d) for b, d in zip(big, x, strict=True)]) < 11


def test_rendered_photos_come_back_close_to_their_mnist_original(mnist):
    # 40 photos with every effect of the renderer (rotation and stroke width change the digit
    # itself): measured mean 15.6, 14.1, 15.1 for seeds 0-2; other digits differ by 39.7.
    rng = np.random.default_rng(0)
    x = mnist.x_test[:40]
    diffs = [mad(imaging.to_mnist(render.render_photo(d, rng)[0]), d) for d in x]
    assert np.mean(diffs) < 19
    assert max(diffs) < 39


def test_uneven_light_and_tinted_paper_do_not_leave_marks():
    flat = imaging.to_mnist(drawn_seven())
    ys, xs = np.mgrid[0:200, 0:200]
    shade = 1.0 - 0.55 * (xs + ys) / 400  # light falls to 45% towards one corner
    photo = np.stack([drawn_seven() * shade * f for f in (0.85, 0.95, 1.0)], axis=-1)  # yellowish
    assert mad(imaging.to_mnist(photo.astype(np.uint8)), flat) < 6  # measured 3.5


def test_specks_and_far_marks_are_dropped():
    clean = imaging.to_mnist(drawn_seven(300))
    dirty = drawn_seven(300)
    rng = np.random.default_rng(0)
    for y, x in rng.integers(0, 300, (40, 2)):
        cv2.circle(dirty, (int(x), int(y)), 1, 40, -1)  # dust
    cv2.line(dirty, (280, 10), (290, 40), 40, 4)  # a pen mark in the corner
    assert mad(imaging.to_mnist(dirty), clean) < 3  # measured 0.01; 19.4 with the corner mark kept


def test_a_small_digit_on_a_large_page_is_found_and_cropped_at_full_resolution():
    page = np.full((900, 1200), 235, np.uint8)  # on the 128 px copy the digit is 6 px tall
    page[400:460, 700:760] = drawn_seven(60)
    alone = imaging.to_mnist(drawn_seven(60))
    assert mad(imaging.to_mnist(page), alone) < 6


@pytest.mark.parametrize("make", [
    lambda: np.full((120, 90), 240, np.uint8),
    lambda: np.zeros((64, 64, 3), np.uint8),
    lambda: np.clip(200 + np.random.default_rng(0).normal(0, 6, (150, 150)), 0, 255).astype(np.uint8),
    lambda: np.tile(np.linspace(90, 230, 300, dtype=np.uint8), (200, 1)),
    lambda: np.full((50, 50, 4), (0, 0, 0, 0), np.uint8),
])
def test_blank_images_are_blank(make):
    with pytest.raises(imaging.ImageError) as e:
        imaging.to_mnist(make())
    assert e.value.kind == "blank"


def test_decode_refuses_images_thinner_than_the_aspect_limit_from_the_header():
    thin = cv2.imencode(".png", np.zeros((3, 4000), np.uint8))[1].tobytes()
    with pytest.raises(imaging.ImageBoundsError, match="4000x3 pixels.*crop it"):
        imaging.decode(thin)
    square_enough = cv2.imencode(".png", np.zeros((10, 10 * imaging.MAX_ASPECT), np.uint8))[1].tobytes()
    assert imaging.decode(square_enough).shape == (10, 10 * imaging.MAX_ASPECT)


def test_the_page_implements_the_same_preprocessing_version():
    # reader/imaging.js repeats this module to the byte (tests/js checks it on the fixtures of
    # scripts/preprocess_fixtures.py); model.json names the version and device.js refuses another
    script = (Path(imaging.__file__).parents[1] / "web/static/reader/imaging.js").read_text()
    assert f'export const PREPROCESS_VERSION = "{imaging.PREPROCESS_VERSION}";' in script
    for name in ("WORK_SIDE", "ZOOM_BELOW", "SPECK_PERCENT", "MIN_CONTRAST"):
        assert f"const {name} = {getattr(imaging, name)};" in script, name
    for name in ("POLARITY_SIDE", "PAPER_SIDE", "OPENING_TENTHS", "PAPER_RISE", "NOISE_MADS",
                 "MIN_PAPER_PARTS", "PAPER_MARGIN", "RIDGE_PARTS"):
        assert f"const {name} = {getattr(paper, name)};" in script, name


@pytest.mark.parametrize("shape, density", [((350, 350), 0.02), ((64, 500), 0.3), ((1, 9), 0.5)])
def test_pieces_are_the_ones_opencvs_default_labelling_finds(shape, density):
    # Sparse specks, dense noise where pieces merge, a single row: the same pieces with the
    # same boxes and areas, whatever numbers the two give them.
    mask = np.random.default_rng(0).random(shape) < density
    labels, stats = imaging.pieces(mask)
    _, default_labels, default_stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                                          connectivity=8)
    assert len(stats) == len(default_stats) > 1
    pairs = np.unique(np.stack([labels.ravel(), default_labels.ravel()]), axis=1)
    assert pairs.shape[1] == len(stats)  # one label for each default label: the same partition
    assert np.array_equal(stats[pairs[0]], default_stats[pairs[1]])
