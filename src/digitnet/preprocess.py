"""Turning MNIST arrays into network inputs (tutorial steps 3 and 4), as Keras users know it."""

from __future__ import annotations

import numpy as np

from digitnet.errors import DigitnetError

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


def input_array(images) -> np.ndarray:
    """The one rule from stored images to the network's input, used by training, evaluation,
    prediction and the export check: uint8 (N, 28, 28) or (28, 28) -> float32 (N, 1, 28, 28)
    in [0, 1]. Float images are taken as already in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DigitnetError(f"expected 28x28 images, got an array of shape {images.shape}")
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x /= 255.0
    return x[:, None]


def input_tensor(images, device=None):
    """``input_array`` as a torch tensor on ``device``: float32 (N, 1, 28, 28)."""
    import torch

    return torch.from_numpy(input_array(images)).to(device)


def scale(x: np.ndarray, data_format: str = "channels_last") -> np.ndarray:
    """Tutorial steps 3 and 4: uint8 images (N, H, W) -> float32 in [0, 1], (N, H, W, 1) or
    (N, 1, H, W), for any image size (Keras code uses it as it is)."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}")
    x = np.asarray(x, dtype="float32") / 255.0
    axis = 1 if data_format == "channels_first" else -1
    return np.expand_dims(x, axis)
