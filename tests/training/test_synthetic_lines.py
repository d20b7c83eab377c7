"""Synthetic lines for the line reader: every digit once per epoch, strips as photos give them."""

from __future__ import annotations

import numpy as np

from digitnet.inference import bundled
from digitnet.inference.predictor import Predictor
from digitnet.training import synthetic_lines


def test_an_epoch_writes_every_digit_once_in_lines_of_1_to_12():
    groups = synthetic_lines.epoch_lines(1000, np.random.default_rng(0))
    assert sorted(np.concatenate(groups).tolist()) == list(range(1000))
    assert all(1 <= len(g) <= 12 for g in groups)


def test_batches_are_strips_of_the_reader_with_their_labels(mnist):
    rng = np.random.default_rng(1)
    groups = synthetic_lines.epoch_lines(60, rng)
    x, y = mnist.x_train[:60], mnist.y_train[:60]
    seen = []
    for batch, labels, widths in synthetic_lines.line_batches(x, y, groups, 8, rng):
        assert batch.dtype == np.uint8 and batch.shape[1] == 32 and batch.shape[2] == max(widths)
        assert all(w % 32 == 0 for w in widths)
        for line, w in zip(batch, widths, strict=True):
            assert line[:, w:].max(initial=0) == 0 and line[:, :w].max() == 255  # padding is black
        seen.extend(labels)
    # each line's labels are one group's digits in order, or nothing for a line of non-digits
    assert len(seen) == len(groups)
    written = {tuple(y[g].tolist()) for g in groups}
    assert all(len(labels) == 0 or tuple(labels.tolist()) in written for labels in seen)


def test_a_line_is_as_long_as_its_digits_and_gaps():
    rng = np.random.default_rng(2)
    one = synthetic_lines.compose([np.pad(np.full((20, 4), 255, np.uint8), 4)] * 1, rng)
    many = synthetic_lines.compose([np.pad(np.full((20, 4), 255, np.uint8), 4)] * 8, rng)
    assert many.shape[1] > one.shape[1] and one.max() > 0


def test_skeletons_thinned_once_give_the_same_lines(mnist):
    x, y = mnist.x_train[:40], mnist.y_train[:40]
    groups = synthetic_lines.epoch_lines(40, np.random.default_rng(3))
    made = [list(synthetic_lines.line_batches(x, y, groups, 8, np.random.default_rng(4), thinned=thinned))
            for thinned in (None, synthetic_lines.skeletons(x, chunk=16))]
    assert len(made[0]) == len(made[1])
    for (a, la, wa), (b, lb, wb) in zip(*made, strict=True):
        assert np.array_equal(a, b) and wa == wb
        assert all(np.array_equal(p, q) for p, q in zip(la, lb, strict=True))


def test_printed_lines_are_their_digits_set_in_one_typeface():
    labels = np.arange(10)
    printed = synthetic_lines.typeset_digits(labels, np.random.default_rng(5))
    assert printed.shape == (10, 28, 28) and printed.dtype == np.uint8
    for digit in printed:  # fitted into MNIST's 20-pixel box, as a photo's digit is
        rows, cols = np.nonzero(digit)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 in (19, 20, 21)
    # legible as what they are: the package's digit reader reads every one
    reader = Predictor.from_run(bundled.READER_DIR)
    assert (reader.probabilities(printed).argmax(1) == labels).all()


def test_printed_and_crisp_lines_are_drawn_only_when_asked(mnist):
    """At 0 (validation) neither option draws from the generator: the lines are the same as
    without them; asked for, they change lines and keep each line's digits."""
    x, y = mnist.x_train[:120], mnist.y_train[:120]
    groups = synthetic_lines.epoch_lines(120, np.random.default_rng(6))

    def made(**shares) -> list:
        return list(synthetic_lines.line_batches(x, y, groups, 8, np.random.default_rng(7), **shares))

    plain, off, on = made(), made(typeset=0.0, crisp=0.0), made(typeset=0.5, crisp=0.5)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(plain, off, strict=True))
    assert any(a[0].shape != b[0].shape or not np.array_equal(a[0], b[0])
               for a, b in zip(plain, on, strict=True))
    written = {tuple(y[g].tolist()) for g in groups}
    assert all(len(digits) == 0 or tuple(digits.tolist()) in written
               for _, labels, _ in on for digits in labels)
