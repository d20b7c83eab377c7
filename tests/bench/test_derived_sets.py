"""Sets made from MNIST test digits for the report: harsh photos, optdigits-like low resolution."""

from __future__ import annotations

import derived_sets
import numpy as np
import pytest
import torch

from digitnet.preprocess import input_tensor
from digitnet.training.augment import bitmap_scan
from digitnet.vision import render


def test_optdigits_like_counts_on_pixels_in_4x4_blocks():
    square = np.zeros((28, 28), np.uint8)
    square[4:24, 4:24] = 255  # ink filling its own box: every block fully on
    assert np.array_equal(derived_sets.optdigits_like(square), np.full((8, 8), 16))
    bar = np.zeros((28, 28), np.uint8)
    bar[4:24, 13:15] = 255  # a thin upright: tall, and narrow because the aspect is kept
    counts = derived_sets.optdigits_like(bar)
    assert counts.dtype == np.uint8 and counts.max() <= 16
    assert (counts.sum(0) > 0).sum() <= 2 and (counts.sum(1) > 0).all()


def test_a_low_resolution_digit_is_read_back_into_a_centred_field(mnist):
    fields, blank = derived_sets.lowres(np.stack([derived_sets.optdigits_like(d) for d in mnist.x_test[:20]]))
    assert fields.shape == (20, 28, 28) and not blank.any()
    for f in fields:
        ys, xs = np.nonzero(f)
        assert 17 <= max(np.ptp(ys), np.ptp(xs)) <= 20  # the 20 px box of MNIST
        w = f.astype(float)
        assert abs((w.sum(1) * np.arange(28)).sum() / w.sum() - 13.5) < 1.5  # centre of mass centred
    assert derived_sets.lowres_to_field(np.zeros((8, 8))) is None  # nothing to read


def test_trainings_bitmap_scan_looks_like_the_low_res_set(mnist):
    """The reader's training makes bitmap scans of its own digits (``augment.bitmap_scan``, in
    torch); this set makes them with OpenCV through the real preprocessing. At 8 cells both
    give nearly the same pictures (a pixel's centring apart), with as much ink. Measured on
    training digits, as the rim level was chosen: gap 0.056 against 0.082 for the digits as
    they are, 194 ink pixels against 195."""
    digits = mnist.x_train[-200:]
    fields, _ = derived_sets.lowres(np.stack([derived_sets.optdigits_like(d) for d in digits]))
    scans = bitmap_scan(input_tensor(digits), (8, 8), torch.Generator().manual_seed(0))[:, 0].numpy()
    target = fields.astype(np.float32) / 255
    gap = np.abs(scans - target).mean()
    assert gap < 0.06 and gap < 0.75 * np.abs(digits.astype(np.float32) / 255 - target).mean()
    assert (scans > 0.1).sum() == pytest.approx((target > 0.1).sum(), rel=0.05)
    blank = torch.zeros(1, 1, 28, 28)
    assert torch.equal(bitmap_scan(blank, (8, 8), None), blank)  # no ink: nothing to scan


def test_harsh_photos_use_every_harsh_effect_and_restore_the_settings(mnist):
    before = dict(render.EFFECTS)
    with derived_sets.harsh_settings():
        _, info = render.render_photo(mnist.x_test[0], np.random.default_rng(0))
        assert {"rotation", "blur"} <= set(info) and ("thick" in info) != ("thin" in info)
        assert "jpeg" not in info  # saved at quality 55 by harsh_photos instead
    assert before == render.EFFECTS
    with pytest.raises(RuntimeError), derived_sets.harsh_settings():
        raise RuntimeError
    assert before == render.EFFECTS
    photos, blank = derived_sets.harsh_photos(mnist.x_test[:5], np.random.default_rng(1))
    assert photos.shape == (5, 28, 28) and not blank.any()
