"""The non-digit hold-outs: drawn by code of their own, as preprocessed fields, reproducibly."""

from __future__ import annotations

import holdouts
import numpy as np
import pytest

from digitnet.training import negatives


@pytest.mark.parametrize("kind", list(holdouts.DRAWN))
def test_every_held_out_kind_draws_preprocessed_ink(kind):
    fields = negatives.render(kind, 5, np.random.default_rng(3), holdouts.DRAWN[kind])
    again = negatives.render(kind, 5, np.random.default_rng(3), holdouts.DRAWN[kind])
    assert fields.shape == (5, 28, 28) and fields.dtype == np.uint8
    assert np.array_equal(fields, again)  # a seed gives the same images
    assert not np.array_equal(fields[0], fields[1])  # and different ones within a set
    for f in fields:  # the reader's preprocessing: ink stretched to full scale, inside the 20 px box
        ys, xs = np.nonzero(f)
        assert f.max() == 255 and max(np.ptp(ys), np.ptp(xs)) <= 21


def test_held_out_kinds_are_drawn_by_other_code_than_trainings():
    assert not set(holdouts.DRAWN) & set(negatives.RENDERERS)
    assert all(draw.__module__ == "holdouts" for draw in holdouts.DRAWN.values())
    # no letter of the stroke alphabet reads as a digit (negatives.GLYPHS' rule, applied to strokes)
    assert not set(holdouts.ALPHABET) & set("OoQDIlijZzSsGbBgqaTYy")


def test_a_pen_stroke_is_as_wide_as_asked_and_as_dark_as_its_pressure():
    canvas = np.zeros((64, 64), np.float32)
    holdouts.pen_stroke(canvas, np.array([[10.0, 32.0], [54.0, 32.0]]), 3.0, np.random.default_rng(0),
                        pressure=0.5)
    column = canvas[:, 32]
    assert 3 <= np.count_nonzero(column > 0.25) <= 10 and column.max() == pytest.approx(0.5)


def test_held_out_sets_name_fashion_test_and_each_kind(mnist):
    sets = holdouts.held_out(2, np.random.default_rng(0), fashion=7)
    assert set(sets) == {*holdouts.DRAWN, "Fashion-MNIST test"}
    assert len(sets["Fashion-MNIST test"]) == 7 and all(len(v) == 2 for k, v in sets.items()
                                                         if k != "Fashion-MNIST test")
