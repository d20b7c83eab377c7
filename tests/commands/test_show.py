"""``digitnet show`` writes a PNG for every kind, and ``digitnet train`` leaves two behind."""

from __future__ import annotations

import shutil

import cv2
import pytest

from digitnet import runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 0 and image.shape[1] > 0


@pytest.mark.parametrize("kind", ["samples", "predictions", "errors", "confusion", "history", "filters"])
def test_every_kind_writes_a_png(cli, trained_run, tmp_path, kind, short_mnist_everywhere):
    out = tmp_path / f"{kind}.png"
    code, stdout, err = cli("show", kind, "--run", trained_run, "--out", out, "--n", "12")
    assert (code, err) == (0, "")
    assert stdout.strip() == f"wrote {out}"
    assert_png(out)


def test_default_output_is_inside_the_run(cli, trained_run, short_mnist_everywhere):
    code, stdout, _ = cli("show", "predictions", "--run", trained_run, "--n", "20")
    assert code == 0 and stdout.strip() == f"wrote {trained_run / 'predictions.png'}"
    assert_png(trained_run / "predictions.png")


def test_samples_need_no_run(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = cli("show", "samples", "--dataset", "fashion-mnist", "--n", "20")
    # into runs/ (ignored by git), not the folder the command was typed in
    assert code == 0 and stdout.strip() == "wrote runs/samples-fashion-mnist.png"
    assert_png(tmp_path / "runs" / "samples-fashion-mnist.png")


def test_bad_input_is_one_line_and_exit_2(cli, trained_run, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(trained_run / runs.CONFIG_FILE, broken)
    (broken / runs.MODEL_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    cases = {
        ("show", "filters", "--run", tmp_path / "missing"): "no such run directory",
        ("show", "confusion", "--run", broken): "corrupt weights",
        ("show", "everything", "--run", trained_run): "invalid choice",
        ("show", "samples", "--n", "0"): "--n 0",
        ("show", "filters", "--run", trained_run, "--index", "10000"): "--index 10000",
    }
    for argv, message in cases.items():
        code, stdout, err = cli(*argv)
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("digitnet: error: ") and message in err, err
    assert not list(broken.glob("*.png"))


def test_train_leaves_history_and_confusion(cli, tmp_path, short_mnist_everywhere):
    run_dir = tmp_path / "r"
    code, stdout, _ = cli("train", "--limit", "1000", "--batch-size", "50", "--precision", "fp32",
                          "--out", run_dir)
    assert code == 0
    for name in ("history.png", "confusion.png"):
        assert_png(run_dir / name)
        assert str(run_dir / name) in stdout
