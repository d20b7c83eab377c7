"""Independent checks of reading other writers: data the project never trains, tunes or
evaluates on, measured separately and never used for any choice.

  load_digits     scikit-learn's ``load_digits`` (UCI optdigits: 1,797 digits of 8x8, 0-16),
                  each read as a user's tiny scan would be (``derived_sets.lowres_to_field``)
  typefaces       digits in handwriting-style typefaces installed from Debian packages,
                  photographed by ``vision.render.render_photo`` and read through ``to_mnist``
  typeface numbers  whole numbers of 2-7 such digits, photographed by ``render_number`` with
                  natural (clear), tight and touching spacing, read by ``read_number``

Set-up, once per machine (the bench's optional extra and the typefaces; tests never need them):

    .venv/bin/pip install -c constraints.txt -e ".[bench]"
    sudo apt-get install fonts-comic-neue fonts-humor-sans fonts-dkg-handwriting fonts-breip \\
        fonts-bwht fonts-kristi fonts-dancingscript

A check whose data is missing is reported as missing, with the command that installs it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitnet.training import negatives
from digitnet.vision import imaging, render

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts")
# File-name stems of the handwriting-style typefaces of the Debian packages above (femkeklaver,
# also a handwriting package, draws hollow outlines: no pen writes like that).
HANDWRITING = ("ComicNeue", "DancingScript", "Breip", "breipfont", "dkg", "Humor-Sans",
               "Kristi", "BecauseWe")
FONTS_HINT = ("install handwriting-style typefaces: sudo apt-get install fonts-comic-neue "
              "fonts-humor-sans fonts-dkg-handwriting fonts-breip fonts-bwht "
              "fonts-kristi fonts-dancingscript")
SKLEARN_HINT = "install the bench extra: .venv/bin/pip install -c constraints.txt -e '.[bench]'"


def load_digits_set() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits -> (uint8 (1797, 28, 28) fields, labels, found blank). Raises
    ImportError with ``SKLEARN_HINT`` when scikit-learn is missing."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(SKLEARN_HINT) from e
    from derived_sets import lowres  # bench/, beside this file

    data = load_digits()
    fields, blank = lowres(data.images)
    return fields, data.target.astype(np.int64), blank


@functools.cache
def handwriting_fonts() -> tuple[Path, ...]:
    """The installed handwriting-style typefaces that draw all ten digits."""
    from fontTools.ttLib import TTFont  # matplotlib's dependency

    found = []
    for folder in FONT_DIRS:
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.suffix.lower() in (".ttf", ".otf") and path.stem.startswith(HANDWRITING):
                cmap = TTFont(path, lazy=True).getBestCmap() or {}
                if all(ord(c) in cmap for c in "0123456789"):
                    found.append(path)
    return tuple(found)


@functools.cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def font_digit(path: Path, digit: int) -> np.ndarray:
    """One digit in one typeface -> uint8 (28, 28) MNIST-like (white ink, 20 px box, centred)."""
    canvas = Image.new("L", (192, 192))
    ImageDraw.Draw(canvas).text((96, 96), str(digit), fill=255, font=_font(path, 120), anchor="mm")
    field = negatives.to_field(np.asarray(canvas))
    if field is None:
        raise ValueError(f"{path.name} draws no ink for {digit}")
    return field


def font_digits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` photographed typeface digits -> (uint8 (n, 28, 28) after ``to_mnist``, labels,
    found blank)."""
    fonts = handwriting_fonts()
    if not fonts:
        raise FileNotFoundError(FONTS_HINT)
    labels = rng.integers(0, 10, n)
    out, blank = np.zeros((n, 28, 28), np.uint8), np.zeros(n, bool)
    for i, d in enumerate(labels):
        photo, _ = render.render_photo(font_digit(fonts[int(rng.integers(len(fonts)))], int(d)), rng)
        try:
            out[i] = imaging.to_mnist(photo)
        except imaging.ImageError:
            blank[i] = True
    return out, labels, blank


def font_numbers(n: int, rng: np.random.Generator, lengths: tuple[int, int] = (2, 7),
                 fonts: tuple[Path, ...] | None = None) -> list[tuple[str, str, np.ndarray]]:
    """(spacing, true text, uint8 BGR photo) of ``n`` numbers, each in one typeface (as one
    person writes a number), the spacings of ``render.SPACINGS`` taking turns; the typefaces
    are ``fonts`` (default: the handwriting-style ones)."""
    fonts = handwriting_fonts() if fonts is None else fonts
    if not fonts:
        raise FileNotFoundError(FONTS_HINT)
    kinds = list(render.SPACINGS)
    cases = []
    for k in range(n):
        font = fonts[int(rng.integers(len(fonts)))]
        digits = rng.integers(0, 10, int(rng.integers(lengths[0], lengths[1] + 1)))
        image = render.render_number([font_digit(font, int(d)) for d in digits], rng,
                                     spacing=kinds[k % len(kinds)])
        cases.append((kinds[k % len(kinds)], "".join(str(int(d)) for d in digits), image))
    return cases
