"""Batch augmentation: same shapes, seeded, a real change, and the identity at zero strength."""

from __future__ import annotations

import torch

from digitnet.preprocess import input_tensor
from digitnet.training.augment import Augmentation, augment


def test_augment_keeps_shape_and_range_and_moves_pixels(mnist):
    x = input_tensor(mnist.x_train[:64])  # (64, 1, 28, 28)
    torch.manual_seed(0)
    out = augment(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1 + 1e-6
    changed = (out - x).abs().mean(dim=(1, 2, 3))
    assert (changed > 0.005).all()  # every image is warped
    # ink is moved, not created or destroyed: totals stay within 30% (scaling changes them a bit)
    ratio = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert ((ratio > 0.7) & (ratio < 1.3)).all()


def test_augment_is_seeded_by_torch():
    x = torch.rand(8, 1, 28, 28)
    torch.manual_seed(3)
    a = augment(x)
    torch.manual_seed(3)
    b = augment(x)
    c = augment(x)
    assert torch.equal(a, b) and not torch.equal(b, c)


def test_zero_strength_is_the_identity():
    x = torch.rand(4, 1, 28, 28)
    none = Augmentation(max_shift=0, max_rotation=0, max_scale=0, elastic_alpha=0)
    assert torch.allclose(none(x), x, atol=1e-5)
