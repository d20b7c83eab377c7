"""The paper under the ink: exact copies at other scales, and a ground that follows the light
without fading the ink."""

from __future__ import annotations

import cv2
import numpy as np

from digitnet.vision import imaging, paper, render


def unevenly_lit(seed: int) -> np.ndarray:
    """uint8 (240, 320) blank paper under the renderer's uneven light (falling to 45-80% across
    the page, and a vignette)."""
    effects = {**dict.fromkeys(render.EFFECTS, 0.0), "uneven_light": 1.0}
    page = np.full((240, 320, 3), 225, np.float32)
    return cv2.cvtColor(render._camera(page, 4.0, np.random.default_rng(seed), {}, effects),
                        cv2.COLOR_BGR2GRAY)


def test_block_means_and_bilinear_upsampling_are_exact_in_whole_numbers():
    ramp = np.tile(np.arange(0, 240, 4, dtype=np.uint8), (30, 1))  # (30, 60), 4 levels a pixel
    small = paper.block_mean(ramp, 4)  # the last blocks hold fewer pixels
    assert small.shape == (8, 15) and small[0, 0] == 6 and small[-1, -1] == 230
    np.testing.assert_array_equal(paper.block_mean(np.full((7, 9), 77, np.uint8), 4), 77)
    # back to full size: a linear ramp comes back exactly, away from the replicated edges
    np.testing.assert_array_equal(paper.upsample(small, 4, ramp.shape)[:, 2:-2], ramp[:, 2:-2])


def test_ink_is_measured_against_the_paper_under_it():
    gray = np.full((40, 40), 200, np.uint8)
    gray[20, 20] = 100
    ink = paper.white_on_black(gray, dark=True)
    assert ink[20, 20] == 128 and ink.sum() == 128  # half as bright as its paper: half strength
    shaded = (gray * np.linspace(1.0, 0.5, 40)[None, :]).round().astype(np.uint8)  # light falls off
    assert abs(int(paper.white_on_black(shaded, dark=True)[20, 20]) - 128) <= 3
    light = np.full((40, 40), 100, np.uint8)
    light[20, 20] = 180
    on_black = paper.white_on_black(light, dark=False)
    assert on_black[20, 20] == 80 and on_black.sum() == 80


def test_the_ground_of_a_plane_of_paper_is_that_plane():
    y, x = np.mgrid[0:40, 0:60]
    plane = (30 + x + y // 2).astype(np.uint8)  # white-on-black ground rising to a corner
    assert np.abs(paper.ground(plane).astype(int) - plane).max() <= 1  # the ridge: 1 at the corner


def test_unevenly_lit_paper_leaves_no_ink_and_a_digit_on_it_keeps_its_strength():
    """What is left of 40 blank pages lit unevenly: less than MIN_CONTRAST on most, never near
    ink's strength (measured: a median of 22, at most 28; the earlier rule, a median as wide as
    the picture, left a median of 28, at most 32)."""
    left = [int(paper.white_on_black(unevenly_lit(seed), dark=True).max()) for seed in range(40)]
    assert np.median(left) < imaging.MIN_CONTRAST and max(left) <= 30
    page = unevenly_lit(0)
    cv2.putText(page, "7", (150, 130), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 40, 3)
    assert paper.white_on_black(page, dark=True)[100:135, 150:180].max() > 150


def test_a_thick_digit_that_fills_a_small_scan_keeps_its_strength():
    """A 32 px scan whose strokes are 8 px wide (an enlarged 8x8 bitmap): the ink in the middle
    of a stroke is as strong as at its edge, not faded towards the paper."""
    scan = np.full((32, 32), 250, np.uint8)
    cv2.circle(scan, (16, 16), 10, 30, 8)  # a fat 0
    ink = paper.white_on_black(scan, dark=True)
    ring = cv2.circle(np.zeros_like(scan), (16, 16), 10, 1, 8) > 0
    assert ink[ring].min() > 200 and ink[~ring].max() < 60
