"""Turning MNIST arrays into network inputs (tutorial steps 3 and 4), as Keras users know it."""

from __future__ import annotations

import numpy as np

DATA_FORMATS = ("channels_first", "channels_last")


def to_categorical(y, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """One-hot encode integer labels, like ``keras.utils.to_categorical``: (N,) -> (N, classes)."""
    y = np.asarray(y, dtype="int64")
    input_shape = y.shape
    # Keras drops a trailing axis of size 1, so (N, 1) labels give (N, classes) too.
    if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
        input_shape = input_shape[:-1]
    y = y.reshape(-1)
    if y.size and y.min() < 0:
        raise ValueError(f"labels must be non-negative, got {y.min()}")
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    if y.size and y.max() >= num_classes:
        raise ValueError(f"label {y.max()} does not fit in {num_classes} classes")
    out = np.zeros((y.size, num_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out.reshape(*input_shape, num_classes)


def scale(x: np.ndarray, data_format: str = "channels_last") -> np.ndarray:
    """uint8 images (N, H, W) -> float32 in [0, 1], (N, H, W, 1) or (N, 1, H, W)."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}")
    x = np.asarray(x, dtype="float32") / 255.0
    axis = 1 if data_format == "channels_first" else -1
    return np.expand_dims(x, axis)


def to_tensor(x: np.ndarray, device: str | None = None):
    """uint8 images (N, 28, 28) -> a float32 torch tensor (N, 1, 28, 28) in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).to(device).float().div_(255).unsqueeze(1)
