"""Property-based fuzz of the image path: any image a client could send, of any size, shape, mode
and format, ends in an answer or a one-line refusal (a DigitnetError), quickly, and nothing else
escapes. The model is ``UniformPredictor``, so the fuzz spends its time on the image path."""

from __future__ import annotations

import io
import time

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from web_helpers import UniformPredictor

from digitnet.errors import DigitnetError
from digitnet.runs.line_reading import LineReader
from digitnet.web import service

MODES = ("L", "RGB", "RGBA", "P", "I;16", "1", "LA")
FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")
SECONDS_PER_IMAGE = 20  # a 16-megapixel image takes ~2 s on an idle core; a loaded CI runner more
PREDICTOR = UniformPredictor()
READER = LineReader.load()  # the package's: small, and what /api/read really runs

# Mostly small sides (fast, and where the odd cases live), sometimes up to 4000 px.
sides = st.one_of(st.integers(1, 8), st.integers(1, 80), st.integers(1, 80), st.integers(1, 4000))


@st.composite
def images(draw) -> tuple[bytes, str]:
    width, height = draw(sides), draw(sides)
    mode, fmt = draw(st.sampled_from(MODES)), draw(st.sampled_from(FORMATS))
    content = draw(st.sampled_from(("noise", "blank", "strokes", "checker")))
    seed = draw(st.integers(0, 2**32 - 1))
    label = f"{width}x{height} {mode} {fmt} {content}"
    return encode(picture(width, height, content, seed), mode, fmt), label


def picture(width: int, height: int, content: str, seed: int) -> Image.Image:
    """An RGB picture; noise only for small images (random pixels of megapixels encode slowly)."""
    rng = np.random.default_rng(seed)
    if content == "noise" and width * height <= 250_000:
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if content == "checker":
        cells = (np.indices((height, width)).sum(axis=0) % 2 * 255).astype(np.uint8)
        return Image.fromarray(cells).convert("RGB")
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    if content != "blank":
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 6))):
            xy = [int(v) for v in rng.integers(0, max(width, height), 4)]
            draw.line(xy, fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
                      width=int(rng.integers(1, max(2, min(width, height) // 4 + 1))))
    return image


def encode(image: Image.Image, mode: str, fmt: str) -> bytes:
    """The picture in ``mode`` as a ``fmt`` file; a mode the format cannot store goes as RGB."""
    converted = image.convert(mode) if mode != "I;16" else image.convert("L").convert("I;16")
    for candidate in (converted, image):
        out = io.BytesIO()
        try:
            candidate.save(out, fmt)
            return out.getvalue()
        except (OSError, ValueError, KeyError, TypeError):
            continue
    raise AssertionError(f"Pillow cannot write RGB {fmt}")


def outcome(fn, data: bytes, label: str, model) -> str:
    start = time.perf_counter()
    try:
        fn(data, "fuzz", model)
        result = "answer"
    except DigitnetError as e:
        message = str(e)
        assert message and "\n" not in message, (label, message)
        result = f"refused: {getattr(e, 'kind', 'other')}"
    elapsed = time.perf_counter() - start
    assert elapsed < SECONDS_PER_IMAGE, (label, elapsed)
    return result


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(images())
def test_any_image_gets_an_answer_or_a_one_line_refusal(case):
    data, label = case
    event(f"predict {outcome(service.predict_image, data, label, PREDICTOR)}")
    event(f"read {outcome(service.read_image, data, label, READER)}")
