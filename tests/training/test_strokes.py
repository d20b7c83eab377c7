"""Other writers from MNIST's strokes: thinning, the style changes, the new pens and the refit
into MNIST's box, on a few real training digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digitnet.preprocess import input_tensor
from digitnet.training import strokes


@pytest.fixture(scope="module")
def digits(mnist) -> dict[int, torch.Tensor]:
    """Eight training digits of each class, (8, 1, 28, 28) in [0, 1]."""
    return {d: input_tensor(mnist.x_train[np.flatnonzero(mnist.y_train == d)[:8]]) for d in range(10)}


def test_skeleton_is_one_pixel_wide_and_inside_the_ink(digits):
    x = torch.cat(list(digits.values()))
    s = strokes.skeleton(x)
    ink = x[:, 0] >= strokes.INK
    assert s.any(dim=(1, 2)).all()  # every digit keeps a centre line
    assert not (s & ~ink).any()  # thinning only removes
    assert s.sum() < 0.5 * ink.sum()  # MNIST's strokes are 2-4 px wide
    # a 1-pixel line: 2x2 blocks of skeleton pixels only where strokes cross (Zhang-Suen keeps
    # a few there; on 2,000 training digits 48 blocks among 73,000 skeleton pixels)
    blocks = s[:, :-1, :-1] & s[:, 1:, :-1] & s[:, :-1, 1:] & s[:, 1:, 1:]
    assert blocks.sum() <= 0.005 * s.sum()


def test_a_flag_grows_down_and_left_from_the_top_of_a_one(digits):
    s = strokes.skeleton(digits[1])
    top = s.any(dim=2).float().argmax(dim=1)  # first row with ink, (n,)
    flagged = strokes.flag_ones(s, strokes.Restyle(p_foot=0.0), torch.Generator().manual_seed(0))
    added = flagged & ~s
    assert added.sum(dim=(1, 2)).min() >= 3
    rows = torch.arange(28).view(1, -1, 1)
    assert not (added & (rows < top.view(-1, 1, 1))).any()  # nothing above the stem's top


def test_a_bar_crosses_a_seven_and_an_open_four_loses_ink_top_left(digits):
    g = torch.Generator().manual_seed(1)
    s7 = strokes.skeleton(digits[7])
    barred = strokes.bar_sevens(s7, strokes.Restyle(), g)
    assert ((barred & ~s7).sum(dim=(1, 2)) >= 3).all()
    s4 = strokes.skeleton(digits[4])
    opened = strokes.open_fours(s4, strokes.Restyle(), g)
    assert not (opened & ~s4).any() and (opened.sum() < s4.sum())


def test_a_wider_pen_draws_more_ink():
    s = torch.zeros(1, 28, 28, dtype=torch.bool)
    s[0, 4:24, 14] = True  # a vertical stroke
    ink = [strokes.redraw(s, strokes.Restyle(pen=(r, r), p_nib=0.0), None).sum().item()
           for r in (0.5, 1.0, 1.5, 2.0)]
    assert ink == sorted(ink) and ink[-1] > 3 * ink[0]


def test_fit_box_puts_the_ink_in_mnist_box_with_its_centre_of_mass_centred():
    x = torch.zeros(2, 1, 28, 28)
    x[0, 0, 2:10, 3:7] = 1.0  # small and off-centre
    x[1, 0, 5:15, 2:26] = 1.0  # wider than tall
    out = strokes.fit_box(x)
    for img in out[:, 0]:
        ys, xs = torch.nonzero(img > 0.1, as_tuple=True)
        side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
        assert 19 <= side <= 22
        mass = img.sum()
        cy = (img.sum(1) * torch.arange(28)).sum() / mass
        cx = (img.sum(0) * torch.arange(28)).sum() / mass
        assert abs(cy - 14) < 1 and abs(cx - 14) < 1
        assert img.max() == 1.0  # stretched as preprocessing stretches


def test_restyle_is_seeded_and_never_touches_not_a_digit(digits):
    x = torch.cat([digits[1], digits[7]])
    y = torch.tensor([1] * 8 + [10] * 8)  # the second half stands for "not a digit" images
    style = strokes.Restyle(p_redraw=1.0)
    a = strokes.restyle(x, y, style, torch.Generator().manual_seed(3))
    b = strokes.restyle(x, y, style, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(a[8:], x[8:])
    assert not torch.equal(a[:8], x[:8])
    assert a.min() >= 0 and a.max() <= 1
