"""Writing styles drawn as the page draws: seeded, and digits the preprocessing reads as such."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.errors import DigitnetError
from digitnet.vision import imaging, styles


@pytest.mark.parametrize("style", list(styles.STYLES))
def test_each_style_is_a_seeded_drawing_that_preprocesses_to_one_digit(style):
    drawings = styles.render_many(style, 6, np.random.default_rng(0))
    assert drawings.shape == (6, 280, 280) and drawings.dtype == np.uint8
    assert np.array_equal(drawings, styles.render_many(style, 6, np.random.default_rng(0)))
    assert len({d.tobytes() for d in drawings}) == 6, "every writer draws differently"
    for drawing in drawings:
        assert drawing[0].min() == 255 and drawing.min() == 17  # white margin, the page's ink
        digit = imaging.to_mnist(drawing)
        assert digit.shape == (28, 28) and digit.max() == 255


def test_an_unknown_style_names_the_known_ones():
    with pytest.raises(DigitnetError, match="one_flag"):
        styles.render("two_loop", np.random.default_rng(0))
    assert styles.digit_of("one_flag") == 1
