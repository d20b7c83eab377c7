"""The command line end to end, and bad input: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from digitnet import runs
from digitnet.datasets import load, sources
from digitnet.errors import DigitnetError


def test_train_and_evaluate_end_to_end(cli, tmp_path, short_mnist_everywhere):
    run_dir = tmp_path / "run"
    code, out, err = cli("train", "--limit", "1000", "--batch-size", "50", "--out", run_dir,
                         "--precision", "fp32")
    assert code == 0, err
    assert "test accuracy" in out and str(run_dir) in out
    assert "epoch 1/1" in err  # not a terminal: one plain line per epoch
    for name in ("config.json", "model.safetensors", "metrics.json", "checkpoint.safetensors"):
        assert (run_dir / name).is_file()
    code, out, _ = cli("evaluate", "--run", run_dir)
    assert code == 0 and "test accuracy" in out
    report = json.loads((run_dir / "evaluation.json").read_text())
    assert report["accuracy"] == pytest.approx(runs.read_metrics(run_dir)["test_accuracy"])
    assert len(report["per_class_accuracy"]) == 10


def test_another_datasets_figures_go_beside_the_runs_own(cli, trained_run, tmp_path, monkeypatch):
    real = sources.load_folder

    def first_500(folder, spec, origin):  # the figure is not the point: 500 test images
        ds = real(folder, spec, origin)
        return dataclasses.replace(ds, x_test=ds.x_test[:500], y_test=ds.y_test[:500])

    monkeypatch.setattr(sources, "load_folder", first_500)
    try:
        load("fashion-mnist")
    except DigitnetError as e:
        pytest.skip(f"Fashion-MNIST not available: {e}")
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    (run_dir / "evaluation.json").write_text('{"dataset": "mnist"}\n')  # the run's own figures
    code, out, _ = cli("evaluate", "--run", run_dir, "--dataset", "fashion-mnist")
    assert code == 0 and f"note: {run_dir} was trained on mnist; its answers are scored against" in out
    report = json.loads((run_dir / "evaluation-fashion-mnist.json").read_text())
    assert report["dataset"] == "fashion-mnist" and sum(map(sum, report["confusion"])) == 500
    assert (run_dir / "evaluation.json").read_text() == '{"dataset": "mnist"}\n'


def test_data_and_summary(cli, mnist):
    code, out, _ = cli("data")
    assert code == 0 and "(60000, 28, 28)" in out and "[5, 0, 4, 1, 9" in out
    code, out, _ = cli("summary")
    assert code == 0 and "(None, 32, 26, 26)" in out and "600,810" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["train", "--epochs", "-1"], "--epochs must be at least 1"),
    (["evaluate", "--run", "/nonexistent/run"], "no such run directory"),
    (["train", "--resume", "/nonexistent/run"], "no such run directory"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_gives_one_line(cli, argv, message):
    code, out, err = cli(*argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_unwritable_output_is_one_line(cli, tmp_path, monkeypatch):
    """Outputs under a plain file: the folder cannot be made, whoever runs the test. Training
    says so before it loads a dataset, not seconds later."""
    (tmp_path / "plain-file").write_text("not a folder")
    blocked = tmp_path / "plain-file"
    for argv in (["show", "samples", "--out", blocked / "samples.png"],
                 ["train", "--limit", "64", "--out", blocked / "run"],
                 ["train-lines", "--epochs", "1", "--out", blocked / "lines"]):
        if argv[0] != "show":
            monkeypatch.setattr(sources, "load_folder", lambda *a, **k: pytest.fail("data loaded first"))
        code, _, err = cli(*argv)
        assert code == 2 and f"{blocked} is a file, not a folder; choose a folder" in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_unknown_option_names_digitnet_once(cli):
    code, _, err = cli("data", "--no-such-option")
    assert code == 2 and err.count("digitnet") == 1 and "unrecognized arguments" in err


def test_corrupt_weights_give_one_line(cli, trained_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    (run_dir / "model.safetensors").write_bytes(b"\x00" * 100)
    code, _, err = cli("evaluate", "--run", run_dir)
    assert code == 2 and "corrupt weights" in err and len(err.strip().splitlines()) == 1


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "digitnet", "--version"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("digitnet ")


def test_a_command_imports_only_what_it_runs():
    """'digitnet data' needs neither torch nor the other commands: only the command named is
    imported (all thirteen cost every command half a second; 'data' took 2.9 s, now 0.7)."""
    script = ("import contextlib, sys\n"
              "from digitnet.cli import main\n"
              "with contextlib.suppress(SystemExit):\n"
              "    main(['data', '--help'])\n"
              "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('digitnet.commands.')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "['digitnet.commands.common', 'digitnet.commands.data']"


@pytest.mark.parametrize("command", ["predict", "read"])
def test_an_empty_file_is_called_empty(cli, tmp_path, command):
    (tmp_path / "empty.png").write_bytes(b"")
    code, _, err = cli(command, tmp_path / "empty.png")
    assert code == 2 and err.startswith(f"digitnet: error: {tmp_path / 'empty.png'}: empty file; use a PNG")
    assert err.count("\n") == 1


@pytest.mark.parametrize("shape", [(2, 2), (2, 40), (3, 4000)])
def test_read_of_a_tiny_or_thin_image_answers_or_refuses_in_one_line(cli, tmp_path, shape):
    image = ((np.indices(shape).sum(axis=0) % 2) * 255).astype(np.uint8)
    path = tmp_path / "odd.png"
    cv2.imwrite(str(path), image)
    code, out, err = cli("read", path)
    assert "Traceback" not in err
    if code:
        assert err.strip().count("\n") == 0 and str(path) in err
    else:
        assert out.strip()


def test_train_lines_refuses_bad_settings_in_one_line(cli, tmp_path):
    code, _, err = cli("train-lines", "--out", tmp_path / "lines", "--epochs", "0")
    assert code == 2 and err.strip() == "digitnet: error: --epochs must be at least 1, got 0"
    code, _, err = cli("train-lines", "--out", tmp_path / "lines", "--precision", "fp16")
    assert code == 2 and "invalid choice" in err and len(err.strip().splitlines()) == 1
