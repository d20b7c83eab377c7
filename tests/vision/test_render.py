"""The photo renderer: seeded, within its stated ranges, every effect used."""

from __future__ import annotations

import cv2
import numpy as np

from digitnet.vision import render


def test_same_seed_same_photo_other_seed_other_photo(mnist):
    a, info_a = render.render_photo(mnist.x_test[0], np.random.default_rng(7))
    b, info_b = render.render_photo(mnist.x_test[0], np.random.default_rng(7))
    c, _ = render.render_photo(mnist.x_test[0], np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert info_a == info_b
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_photos_are_dark_ink_on_light_paper_within_the_stated_ranges(mnist):
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for digit in mnist.x_test[:150]:
        photo, info = render.render_photo(digit, rng)
        h, w = photo.shape[:2]
        assert photo.dtype == np.uint8 and photo.shape[2] == 3
        assert 100 <= h <= 400 and 100 <= w <= 400 and info["canvas"] == (h, w)
        x, y, size, _ = info["box"]
        assert x >= 0 and y >= 0 and x + size <= w and y + size <= h
        gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
        inside = gray[y : y + size, x : x + size]
        assert np.percentile(inside, 1) + 40 < np.median(gray)  # the ink is darker than the paper
        assert abs(info.get("rotation", 0)) <= 15
        seen |= set(info) & set(render.EFFECTS)
    assert seen == set(render.EFFECTS)  # every kind of effect occurs


def test_numbers_grow_with_their_digits_and_touch_when_asked(mnist):
    rng = np.random.default_rng(0)
    three = render.render_number(list(mnist.x_test[:3]), rng)
    assert three.dtype == np.uint8 and three.ndim == 3 and three.shape[1] > three.shape[0]
    # the same two digits, far apart and overlapping, at the same size and without effects
    apart = render.render_number(list(mnist.x_test[:2]), np.random.default_rng(1), gap=8)
    touching = render.render_number(list(mnist.x_test[:2]), np.random.default_rng(1), gap=-2)
    assert touching.shape[1] < apart.shape[1]
