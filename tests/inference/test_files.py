"""``digitnet predict`` / ``digitnet read``: accuracy on rendered photos, output formats, and one
clear line per bad file while the good ones are still answered."""

from __future__ import annotations

import json
import struct
import zlib

import cv2
import numpy as np
import pytest

from digitnet.inference.files import predict_files
from digitnet.inference.predictor import Predictor
from digitnet.vision import render


def write(path, image, *params) -> str:
    ok, data = cv2.imencode(path.suffix, image, list(params))
    assert ok
    path.write_bytes(data.tobytes())
    return str(path)


def huge_png_header(path) -> str:
    """A 100-byte PNG claiming 8000 x 6000 pixels (48 megapixels)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 6000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.from_run(trained_run)


@pytest.fixture(scope="module")
def photos(mnist, tmp_path_factory):
    """200 rendered photos of MNIST test digits (seeded) as PNG/JPEG files, with their labels."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    idx = rng.choice(len(mnist.x_test), 200, replace=False)
    paths = []
    for k, i in enumerate(idx):
        image, info = render.render_photo(mnist.x_test[i], rng)
        if "jpeg" in info:
            paths.append(write(folder / f"p{k:03d}.jpg", image, cv2.IMWRITE_JPEG_QUALITY, 95))
        else:
            paths.append(write(folder / f"p{k:03d}.png", image))
    return paths, mnist.y_test[idx], mnist.x_test[idx]


def test_accuracy_on_rendered_photos(predictor, photos, tmp_path):
    """Reading photos costs little accuracy: the shared one-epoch fixture model read 0.90 of
    these 200 photos and 0.93 of the same digits clean; bench/photos.py measures a full model."""
    paths, labels, clean = photos
    predictions, errors = predict_files(predictor, paths, top_k=3, debug_dir=tmp_path / "seen")
    assert errors == []
    assert [p.path for p in predictions] == paths
    accuracy = np.mean([p.digit == y for p, y in zip(predictions, labels, strict=True)])
    clean_accuracy = np.mean(predictor.probabilities(clean).argmax(1) == labels)
    assert accuracy >= clean_accuracy - 0.04 and accuracy >= 0.88
    p = predictions[0]
    assert [d for d, _ in p.top_k][0] == p.digit and len(p.top_k) == 3
    assert p.top_k[0][1] >= p.top_k[1][1] >= p.top_k[2][1]
    seen = cv2.imread(str(tmp_path / "seen" / "p000.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(seen, p.image28)  # the debug image is exactly what the model saw


@pytest.fixture
def mixed_inputs(tmp_path, mnist):
    """Good photos in several formats, and every kind of bad input."""
    rng = np.random.default_rng(3)
    photo, _ = render.render_photo(mnist.x_test[0], rng)  # a 7
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    alpha = np.dstack([np.zeros_like(photo), 255 - gray])  # black ink on transparency
    good = [write(tmp_path / "photo.jpg", photo), write(tmp_path / "gray.png", gray),
            write(tmp_path / "alpha.png", alpha), write(tmp_path / "deep.png", gray.astype(np.uint16) * 257),
            write(tmp_path / "scan.bmp", photo), write(tmp_path / "scan.tiff", photo),
            write(tmp_path / "phone.webp", photo, cv2.IMWRITE_WEBP_QUALITY, 90)]
    (tmp_path / "notes.png").write_text("not an image at all\n")
    data = (tmp_path / "gray.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    bad = {"blank.png": write(tmp_path / "blank.png", np.full((200, 150), 235, np.uint8)),
           "cut.png": str(tmp_path / "cut.png"), "notes.png": str(tmp_path / "notes.png"),
           "huge.png": huge_png_header(tmp_path / "huge.png"), "folder": str(tmp_path / "folder"),
           "missing.png": str(tmp_path / "missing.png")}
    (tmp_path / "folder").mkdir()
    return good, bad


def test_predict_every_format_and_one_line_per_bad_file(cli, trained_run, mixed_inputs):
    good, bad = mixed_inputs
    code, out, err = cli("predict", "--run", trained_run, good[0], *bad.values(), *good[1:], "--json")
    assert code == 2
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in lines] == good
    assert {r["digit"] for r in lines} == {7}  # the same photo in every format and layout
    keys = {"path", "verdict", "text", "digit", "runner_up", "probability", "top_k"}
    assert all(set(r) == keys and len(r["top_k"]) == 3 for r in lines)
    errors = err.splitlines()
    assert len(errors) == len(bad)
    for path, line in zip(bad.values(), errors, strict=True):
        assert line.startswith(f"digitnet: error: {path}: "), line
    reasons = dict(zip(bad, errors, strict=True))
    assert "blank" in reasons["blank.png"]
    assert "truncated" in reasons["cut.png"]
    assert "not an image" in reasons["notes.png"]
    assert "too large" in reasons["huge.png"] and "48.0 megapixels" in reasons["huge.png"]
    assert "directory" in reasons["folder"]
    assert "no such file" in reasons["missing.png"]
    assert "Traceback" not in err


def test_predict_text_output_top_k_and_debug_dir(cli, trained_run, mixed_inputs, tmp_path):
    good, _ = mixed_inputs
    code, out, err = cli("predict", "--run", trained_run, good[0], good[1], "--top-k", "2",
                         "--debug-dir", tmp_path / "seen")
    assert code == 0 and err.count("\n") == 1  # only the note about the debug images
    first = out.splitlines()[0]
    assert first.startswith(f"{good[0]}: 7 (probability ") and "top 2: 7 " in first
    assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == ["gray.png", "photo.png"]
    assert cli("predict", "--run", trained_run, good[0], "--top-k", "0")[0] == 2


def test_read_command_prints_the_number_and_json(cli, trained_run, mnist, tmp_path):
    rng = np.random.default_rng(1)
    idx = rng.choice(len(mnist.x_test), 4, replace=False)
    path = write(tmp_path / "number.png", render.render_number(list(mnist.x_test[idx]), rng,
                                                                spacing="touching"))
    truth = "".join(str(int(d)) for d in mnist.y_test[idx])
    code, out, _ = cli("read", path)  # the line reader shipped in the package
    assert code == 0 and out.splitlines()[0].startswith(f"{path}: {truth}  (probability ")
    assert len(out.splitlines()) == 1 + len(truth)
    code, out, _ = cli("read", path, "--json")
    result = json.loads(out)
    assert result["path"] == path and result["text"] == truth and result["verdict"] == truth
    assert [d["digit"] for d in result["digits"]] == [int(c) for c in truth]
    assert all(len(d["box"]) == 4 and 0 < d["probability"] <= 1 for d in result["digits"])
    blank = write(tmp_path / "blank.png", np.full((100, 300), 230, np.uint8))
    code, _, err = cli("read", blank)
    assert code == 2 and err.startswith(f"digitnet: error: {blank}: blank image")
    # several files: each is read, a bad one is one line and does not stop the others
    code, out, err = cli("read", blank, path, "--json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and blank in err
    assert json.loads(out)["text"] == truth
    # a digit classifier's run is no line reader: one line saying what to do
    code, _, err = cli("read", "--run", trained_run, path)
    assert code == 2 and "train-lines" in err and len(err.strip().splitlines()) == 1


def test_predict_on_a_number_points_to_read(cli, trained_run, mnist, tmp_path):
    rng = np.random.default_rng(3)
    idx = rng.choice(len(mnist.x_test), 6, replace=False)
    number = write(tmp_path / "314159.png", render.render_number(list(mnist.x_test[idx]), rng))
    single = write(tmp_path / "one.png", render.render_photo(mnist.x_test[0], rng)[0])
    code, out, _ = cli("predict", "--run", trained_run, number, single)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("  this looks like a number of ")
    assert lines[1].endswith(f"digits, not one digit: read it with 'digitnet read {number}'")
    assert len(lines) == 3 and lines[2].startswith(f"{single}: "), "no note for one digit"
    code, out, _ = cli("predict", "--run", trained_run, number, single, "--json")
    first, second = (json.loads(line) for line in out.splitlines())
    # 6 written; a touching pair may count as one
    assert first["number_of_digits"] >= 4 and "number_of_digits" not in second
