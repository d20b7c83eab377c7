"""Data augmentation on whole batches: random affine warps plus elastic distortion.

Everything is one ``F.affine_grid`` + one ``F.grid_sample`` per batch, so it costs about as much
as a single small convolution. Randomness comes from torch's global RNG, which
``hardware.seed_everything`` seeds and checkpoints save, so augmented runs are reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    max_shift: float = 2.0 / 14  # fraction of the half-width (grid units): 2 pixels of 28
    max_rotation: float = 10.0  # degrees either way
    max_scale: float = 0.10  # zoom by a factor in [1 - s, 1 + s]
    elastic_alpha: float = 0.03  # peak displacement in grid units (~0.4 pixel) ...
    elastic_grid: int = 4  # ... of a random field on a 4x4 lattice, smoothly upsampled

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return augment(x, self)


def random_affine(n: int, aug: Augmentation, device: torch.device) -> torch.Tensor:
    """(n, 2, 3) affine matrices: rotation, isotropic scale and shift, in grid coordinates."""
    u = torch.rand(n, 4, device=device) * 2 - 1  # (n, 4) uniform in [-1, 1)
    angle = u[:, 0] * math.radians(aug.max_rotation)
    scale = 1 + u[:, 1] * aug.max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = u[:, 2:] * aug.max_shift  # (n, 2)
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                        torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def elastic_field(n: int, size: tuple[int, int], aug: Augmentation,
                  device: torch.device) -> torch.Tensor:
    """(n, H, W, 2) smooth random displacements: coarse noise, bicubically upsampled."""
    coarse = (torch.rand(n, 2, aug.elastic_grid, aug.elastic_grid, device=device) * 2 - 1)
    field = F.interpolate(coarse * aug.elastic_alpha, size=size, mode="bicubic",
                          align_corners=True)  # (n, 2, H, W)
    return field.permute(0, 2, 3, 1)


def augment(x: torch.Tensor, aug: Augmentation | None = None) -> torch.Tensor:
    """A randomly warped copy of the images ``x`` (N, C, H, W); background stays zero."""
    aug = aug or Augmentation()
    n, _, h, w = x.shape
    theta = random_affine(n, aug, x.device).to(x.dtype)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)  # (N, H, W, 2)
    if aug.elastic_alpha:
        grid = grid + elastic_field(n, (h, w), aug, x.device).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
