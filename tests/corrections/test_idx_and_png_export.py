"""Exported corrections: MNIST's four IDX files, or PNGs in a folder per label."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digitnet.corrections import dataset_files, store
from digitnet.datasets import idx, sources
from digitnet.errors import DigitnetError


@pytest.fixture
def data() -> store.Labelled:
    """Ten corrections: ids 1..10, image i filled with i, labels cycling over 0-9 and 10."""
    ids = np.arange(1, 11)
    x = np.stack([np.full((28, 28), i, np.uint8) for i in ids])
    return store.Labelled(x, ids % 11, ids)


def test_idx_export_reads_back_as_an_mnist_folder(data, tmp_path):
    written = dataset_files.write(data, "idx", tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(stem for _, stem, _ in sources.FILES)
    files = sources.find_files(tmp_path / "out")  # what load_data-style code looks for
    x_train, _ = sources.read_file(files["train-images-idx3-ubyte"], 3)
    y_train, _ = sources.read_file(files["train-labels-idx1-ubyte"], 1)
    x_test, _ = sources.read_file(files["t10k-images-idx3-ubyte"], 3)
    y_test, _ = sources.read_file(files["t10k-labels-idx1-ubyte"], 1)
    assert x_train.shape == (8, 28, 28) and x_test.shape == (2, 28, 28)
    assert x_test[:, 0, 0].tolist() == [5, 10] and y_test.tolist() == [5, 10]  # every fifth held out
    assert y_train.tolist() == [1, 2, 3, 4, 6, 7, 8, 9]
    assert idx.parse(idx.encode(x_train), tmp_path, ndim=3).tolist() == x_train.tolist()


def test_png_export_has_a_folder_per_label(data, tmp_path):
    dataset_files.write(data, "png", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "not-a-digit"]
    image = cv2.imread(str(tmp_path / "out" / "not-a-digit" / "10-0.png"), cv2.IMREAD_UNCHANGED)
    assert image.shape == (28, 28) and image.dtype == np.uint8 and image.max() == 10


def test_export_never_mixes_with_an_earlier_one(data, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.png").write_bytes(b"")
    with pytest.raises(DigitnetError, match="not an empty folder"):
        dataset_files.write(data, "png", tmp_path / "out")
    with pytest.raises(DigitnetError, match="idx, png"):
        dataset_files.write(data, "jpeg", tmp_path / "new")
