"""Tutorial steps 3 and 4: channel axis, float32 in [0, 1], one-hot labels."""

import numpy as np
import pytest

from digitnet.errors import DigitnetError
from digitnet.preprocess import input_array, input_tensor, scale, to_categorical


def test_to_categorical_like_keras():
    y = np.array([5, 0, 4, 9], np.uint8)
    one_hot = to_categorical(y, 10)
    assert one_hot.shape == (4, 10) and one_hot.dtype == np.float32
    assert one_hot.argmax(1).tolist() == [5, 0, 4, 9]
    assert one_hot.sum(1).tolist() == [1, 1, 1, 1]
    assert to_categorical(np.array([[1], [2]])).shape == (2, 3)  # (N, 1) -> (N, classes)
    assert to_categorical([0, 2], num_classes=3).tolist() == [[1, 0, 0], [0, 0, 1]]


def test_to_categorical_refuses_out_of_range():
    with pytest.raises(ValueError, match="does not fit"):
        to_categorical([3, 10], 10)


@pytest.mark.parametrize(("data_format", "shape"), [
    ("channels_last", (3, 28, 28, 1)), ("channels_first", (3, 1, 28, 28)),
])
def test_scale(data_format, shape):
    x = np.array([np.full((28, 28), v, np.uint8) for v in (0, 51, 255)])
    out = scale(x, data_format)
    assert out.shape == shape and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    assert out.reshape(3, -1)[:, 0].tolist() == pytest.approx([0.0, 0.2, 1.0])


def test_input_tensor_matches_scale():
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    np.testing.assert_allclose(input_tensor(x).numpy(), scale(x, "channels_first"), rtol=1e-6)


def test_input_array_accepts_one_image_or_floats_and_refuses_other_sizes():
    image = np.full((28, 28), 255, np.uint8)
    assert input_array(image).shape == (1, 1, 28, 28) and input_array(image).max() == 1.0
    floats = np.full((2, 28, 28), 0.5, np.float32)
    assert input_array(floats).max() == 0.5  # already in [0, 1]: not divided again
    with pytest.raises(DigitnetError, match="expected 28x28 images"):
        input_array(np.zeros((2, 32, 32), np.uint8))
