"""Write the golden fixtures of the preprocessing: pictures of every kind the readers meet, each
with the 28x28 digit ``digitnet.vision.imaging.to_mnist`` makes of it (or the error it raises),
and for whole numbers also the steps a number shares with a digit (``imaging.find_ink`` on the
number's copy: its white ink and mask, as a CRC-32). tests/js/imaging.test.mjs checks that the
page's reader/imaging.js gives the same bytes.

    python scripts/preprocess_fixtures.py [OUT]   (default build/fixtures/preprocess.bin.gz)

The pictures are drawn from a fixed seed, so the file is the same on every run with the same
libraries; it is written at test time (``make test-js``), not kept in the repository (photos
of noise do not compress). Kinds: drawings on the page's canvas (opaque, or strokes on a
transparent ground), rendered photos (``vision.render``, the harsh ones included), whole
numbers (some larger than a number's copy), thin and faint strokes, small digits on large pages,
tiny scans (enlarged, not shrunk, to the 20 px box), light ink on dark, blanks.

File layout (gzip): a little-endian uint32 n, n bytes of JSON (the version and one entry per
picture: name, kind, w, h, channels (1 gray or 4 RGBA), dark (true or null), offset of its
pixels in the data, and either ``expected`` (offset of its 784 bytes) or ``error`` (the
ImageError kind); a number also has ``number_ink``: {w, h, crc32} of ``find_ink``'s ink bytes
then its mask as 0/1 bytes, or {error}), then the data.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from digitnet.vision import imaging, render

DEFAULT_OUT = Path("build/fixtures/preprocess.bin.gz")
# Digit skeletons on a unit square, one polyline per stroke.
SKELETONS = [
    [[(0.5, 0.0), (0.15, 0.25), (0.15, 0.75), (0.5, 1.0), (0.85, 0.75), (0.85, 0.25), (0.5, 0.0)]],
    [[(0.35, 0.2), (0.55, 0.0), (0.55, 1.0)]],
    [[(0.15, 0.2), (0.5, 0.0), (0.85, 0.25), (0.15, 1.0), (0.9, 1.0)]],
    [[(0.15, 0.05), (0.8, 0.1), (0.45, 0.45), (0.85, 0.7), (0.5, 1.0), (0.1, 0.9)]],
    [[(0.6, 0.0), (0.05, 0.68), (0.95, 0.68)], [(0.68, 0.3), (0.68, 1.0)]],
    [[(0.85, 0.0), (0.25, 0.0), (0.2, 0.45), (0.8, 0.55), (0.75, 0.95), (0.15, 0.95)]],
    [[(0.75, 0.0), (0.2, 0.6), (0.4, 1.0), (0.8, 0.8), (0.6, 0.5), (0.25, 0.65)]],
    [[(0.1, 0.0), (0.9, 0.0), (0.4, 1.0)], [(0.35, 0.5), (0.8, 0.5)]],
    [[(0.5, 0.5), (0.15, 0.2), (0.5, 0.0), (0.85, 0.2), (0.15, 0.8), (0.5, 1.0), (0.85, 0.8), (0.5, 0.5)]],
    [[(0.85, 0.3), (0.5, 0.5), (0.15, 0.3), (0.5, 0.0), (0.85, 0.3), (0.75, 1.0)]],
]


def strokes(rng: np.random.Generator, side: int, fill: float) -> list[np.ndarray]:
    """A digit's strokes as int32 polylines in a ``side`` px square, about ``fill`` of it tall,
    slanted, squeezed and jittered."""
    skeleton = SKELETONS[int(rng.integers(10))]
    height = fill * side
    width = height * rng.uniform(0.4, 0.8)
    slant = rng.uniform(-0.3, 0.3)
    cx, cy = side / 2 + rng.uniform(-0.1, 0.1) * side, side / 2 + rng.uniform(-0.1, 0.1) * side
    lines = []
    for stroke in skeleton:
        p = np.array(stroke) - 0.5
        p[:, 0] -= slant * p[:, 1]
        p = p * (width, height) + (cx, cy) + rng.normal(0, 0.01 * side, p.shape)
        lines.append(np.clip(p, 0, side - 1).round().astype(np.int32))
    return lines


def drawing(rng: np.random.Generator, side: int, thickness: int, ink: int = 20, paper: int = 255,
            fill: float = 0.7) -> np.ndarray:
    """uint8 (side, side) dark strokes on light."""
    image = np.full((side, side), paper, np.uint8)
    cv2.polylines(image, strokes(rng, side, fill), False, ink, thickness, cv2.LINE_AA)
    return image


def mnist_like(rng: np.random.Generator) -> np.ndarray:
    """uint8 (28, 28) white-on-black digit in MNIST's box, for the renderer."""
    return 255 - drawing(rng, 28, int(rng.integers(1, 4)), ink=0, fill=0.7)


def rgba(gray: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    out = np.dstack([gray, gray, gray, np.full_like(gray, 255) if alpha is None else alpha])
    return out


def pictures(seed: int = 0) -> Iterator[tuple[str, str, np.ndarray, bool | None]]:
    """(name, kind, uint8 (H, W) gray or (H, W, 4) RGBA picture, dark) for every fixture."""
    rng = np.random.default_rng(seed)
    for i in range(80):  # the page's canvas: 280 px, any pen, polarity known or judged
        image = drawing(rng, 280, int(rng.integers(3, 40)))
        yield f"drawing-{i}", "drawing", rgba(image), bool(i % 2) or None
    for i in range(20):  # strokes on a transparent ground, dark or light
        strokes_only = 255 - drawing(rng, int(rng.integers(60, 300)), int(rng.integers(2, 20)), ink=0)
        colour = np.full_like(strokes_only, 230 if i % 2 else 10)
        yield f"transparent-{i}", "drawing", rgba(colour, strokes_only), None
    for i in range(100):  # photos, every other one harsh; a few in colour
        effects, quality = (render.HARSH, render.HARSH_JPEG_QUALITY) if i % 2 else (render.EFFECTS, None)
        photo, _ = render.render_photo(mnist_like(rng), rng, effects, quality)
        rgb = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)
        yield f"photo-{i}", "photo", (np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
                                      if i % 10 == 0 else cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)), None
    for i in range(30):  # whole numbers, read as one digit would be
        digits = [mnist_like(rng) for _ in range(int(rng.integers(2, 7)))]
        spacing = ("clear", "tight", "touching")[i % 3]
        yield f"number-{i}", "number", cv2.cvtColor(render.render_number(digits, rng, spacing=spacing),
                                                     cv2.COLOR_BGR2GRAY), None
    for i in range(6):  # numbers photographed large: found on a copy averaged down for the line
        digits = [mnist_like(rng) for _ in range(int(rng.integers(3, 8)))]
        number = cv2.cvtColor(render.render_number(digits, rng), cv2.COLOR_BGR2GRAY)
        scale = float(rng.uniform(4, 7))
        yield f"number-large-{i}", "number", cv2.resize(number, None, fx=scale, fy=scale,
                                                         interpolation=cv2.INTER_LINEAR), None
    for i in range(40):  # thin pens and faint pencil
        side = int(rng.integers(150, 700))
        thin = i % 2 == 0
        image = drawing(rng, side, 1 if thin else int(rng.integers(2, 6)),
                        ink=int(rng.integers(20, 120)) if thin else int(rng.integers(150, 215)),
                        paper=int(rng.integers(220, 256)))
        noisy = np.clip(image + rng.normal(0, rng.uniform(0, 4), image.shape), 0, 255).astype(np.uint8)
        yield f"{'thin' if thin else 'faint'}-{i}", "thin-faint", noisy, None
    for i in range(20):  # a small digit on a large page (found on a copy, looked at closer)
        page = np.full((int(rng.integers(600, 1200)), int(rng.integers(800, 1600))), 235, np.uint8)
        digit = drawing(rng, int(rng.integers(40, 120)), int(rng.integers(2, 8)), ink=30, paper=235)
        y = int(rng.integers(0, page.shape[0] - digit.shape[0]))
        x = int(rng.integers(0, page.shape[1] - digit.shape[1]))
        page[y : y + digit.shape[0], x : x + digit.shape[1]] = digit
        yield f"page-{i}", "page", page, None
    for i in range(12):  # tiny scans: the digit enlarged to its 20 px box (Keys' cubic)
        side = int(rng.integers(10, 40))
        tiny = drawing(rng, side, max(1, side // 8), ink=int(rng.integers(0, 90)))
        yield f"tiny-{i}", "tiny", cv2.resize(tiny, (side, side), interpolation=cv2.INTER_AREA), None
    for i in range(15):  # chalk on a blackboard: light ink on dark
        image = 255 - drawing(rng, int(rng.integers(80, 300)), int(rng.integers(2, 15)), ink=40,
                              paper=int(rng.integers(200, 250)))
        yield f"light-on-dark-{i}", "light-on-dark", image, None
    blanks = [np.full((120, 90), 240, np.uint8), np.zeros((64, 64), np.uint8),
              np.clip(200 + rng.normal(0, 6, (150, 150)), 0, 255).astype(np.uint8),
              np.tile(np.linspace(90, 230, 300).astype(np.uint8), (200, 1))]
    for i, image in enumerate(blanks):
        yield f"blank-{i}", "blank", image, None


def expected(image: np.ndarray, dark: bool | None) -> np.ndarray | str:
    """to_mnist's digit for the picture as the page holds it (RGBA as the browser decodes it),
    or the kind of error it raises."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA) if image.ndim == 3 else image
    try:
        return imaging.to_mnist(bgr, dark)
    except imaging.ImageError as e:
        return e.kind


def number_ink(image: np.ndarray) -> dict:
    """What a number shares with a digit, as ``numbers.read_number`` computes it: ``find_ink``
    on a copy at most ``imaging.NUMBER_SIDE`` px long, summed up as {w, h, crc32} (or {error})."""
    gray = imaging.to_gray(image)
    try:
        found = imaging.find_ink(gray, imaging.polarity(gray), imaging.NUMBER_SIDE)
    except imaging.ImageError as e:
        return {"error": e.kind}
    h, w = found.ink.shape
    return {"w": w, "h": h, "crc32": zlib.crc32(found.ink.tobytes() + found.mask.astype(np.uint8).tobytes())}


def write(out: Path, seed: int = 0) -> int:
    """Write the fixtures (atomically) and return how many there are."""
    entries, blobs, offset = [], [], 0
    for name, kind, image, dark in pictures(seed):
        result = expected(image, dark)
        h, w = image.shape[:2]
        entry = {"name": name, "kind": kind, "w": w, "h": h, "channels": 1 if image.ndim == 2 else 4,
                 "dark": dark, "pixels": offset}
        if kind == "number":
            entry["number_ink"] = number_ink(image)
        blobs.append(np.ascontiguousarray(image).tobytes())
        offset += len(blobs[-1])
        if isinstance(result, str):
            entry["error"] = result
        else:
            entry["expected"] = offset
            blobs.append(result.tobytes())
            offset += len(blobs[-1])
        entries.append(entry)
    header = json.dumps({"version": imaging.PREPROCESS_VERSION, "seed": seed,
                         "number_side": imaging.NUMBER_SIDE, "fixtures": entries}).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    with gzip.open(tmp, "wb", compresslevel=3) as f:
        f.write(struct.pack("<I", len(header)) + header)
        for blob in blobs:
            f.write(blob)
    tmp.replace(out)
    return len(entries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = write(args.out, args.seed)
    print(f"{args.out}: {n} pictures and their 28x28 digits ({imaging.PREPROCESS_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
