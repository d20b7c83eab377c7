"""``digitnet show explain IMAGE``: what the network sees in a photo, as a PNG."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.fixture
def photo(tmp_path):
    """A dark '7' drawn with a pen on light paper, 200x200, saved as a JPEG."""
    paper = np.full((200, 200), 225, np.uint8)
    cv2.line(paper, (55, 50), (145, 50), 40, 12)
    cv2.line(paper, (145, 50), (90, 160), 40, 12)
    path = tmp_path / "seven.jpg"
    cv2.imwrite(str(path), paper)
    return path


def test_explain_with_the_bundled_reader_writes_into_runs(cli, photo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = cli("show", "explain", photo)
    assert (code, err) == (0, "")
    assert stdout.strip() == "wrote runs/explain-seven.png"
    image = cv2.imread(str(tmp_path / "runs" / "explain-seven.png"))
    assert image is not None and image.shape[1] >= 900


def test_explain_with_the_tutorial_model(cli, photo, trained_run, tmp_path):
    out = tmp_path / "why.png"
    code, stdout, err = cli("show", "explain", photo, "--run", trained_run, "--out", out)
    assert (code, err, stdout.strip()) == (0, "", f"wrote {out}")
    assert cv2.imread(str(out)) is not None


def test_explain_by_integrated_gradients(cli, photo, tmp_path):
    """The other method draws another picture of the same digit."""
    pictures = {}
    for method in ("occlusion", "integrated-gradients"):
        out = tmp_path / f"{method}.png"
        code, _, err = cli("show", "explain", photo, "--method", method, "--out", out)
        assert (code, err) == (0, "")
        pictures[method] = cv2.imread(str(out))
    assert pictures["occlusion"].shape == pictures["integrated-gradients"].shape
    assert not np.array_equal(pictures["occlusion"], pictures["integrated-gradients"])


def test_bad_requests_are_one_line(cli, photo, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    cases = {
        ("show", "explain"): "give an IMAGE",
        ("show", "samples", photo): "only with explain",
        ("show", "explain", tmp_path / "missing.png"): "missing.png",
        ("show", "explain", junk): "junk.png",
        ("show", "explain", photo, "--run", tmp_path / "nowhere"): "no such run directory",
        ("show", "explain", photo, "--method", "lime"): "invalid choice: 'lime'",
    }
    for argv, message in cases.items():
        code, _, err = cli(*argv)
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("digitnet: error: ") and message in err, err
