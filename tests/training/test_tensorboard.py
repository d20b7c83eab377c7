"""``--tensorboard``: the event file holds what the run measured, the weights it ended with, its
graph and pictures; the option changes no weight, and without it nothing is written or loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from digitnet import runs
from digitnet.training.run import fit

pytest.importorskip("tensorboard", reason="the optional extra digitnet[tensorboard] is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


@pytest.fixture(scope="module")
def logged_runs(tmp_path_factory, mnist_short_test):
    """The same tiny run (2 epochs of 100 steps) with and without --tensorboard."""
    from digitnet.runs.config import TrainConfig

    config = TrainConfig(limit=1000, epochs=2, batch_size=10, precision="fp32", threads=1)
    root = tmp_path_factory.mktemp("tensorboard")
    with_board = fit(config.replace(tensorboard=True), root / "with", dataset=mnist_short_test)
    without = fit(config, root / "without", dataset=mnist_short_test)
    return root / "with", with_board, root / "without", without


def read_events(run_dir) -> EventAccumulator:
    files = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = EventAccumulator(str(files[0]), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc


def test_scalars_are_the_runs_own_figures(logged_runs):
    run_dir, metrics, _, _ = logged_runs
    acc = read_events(run_dir)
    history = metrics["history"]

    def scalars(tag):
        return [(e.step, e.value) for e in acc.Scalars(tag)]

    # every 50 steps: the trace metrics.json keeps, at the same global steps
    for key in ("loss", "accuracy"):
        expected = [(p["step"], pytest.approx(p[key], rel=1e-6)) for p in history["steps"]]
        assert scalars(f"step/{key}") == expected
    assert [s for s, _ in scalars("step/loss")] == [50, 100, 150, 200]
    assert [v for _, v in scalars("step/learning_rate")] == pytest.approx([1e-3] * 4)
    assert all(0 < v < 10 for _, v in scalars("step/seconds_per_step"))
    # each epoch, at its last step
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        expected = [(100 * e["epoch"], pytest.approx(e[key], rel=1e-6)) for e in history["epochs"]]
        assert scalars(f"epoch/{key}") == expected


def test_weights_graph_and_pictures(logged_runs):
    run_dir, _, _, _ = logged_runs
    acc = read_events(run_dir)
    tags = acc.Tags()
    assert tags["graph"] is True
    assert {op.name for op in acc.Graph().node if "conv1" in op.name}  # the traced TutorialCNN
    assert set(tags["images"]) == {"images/training", "images/mistakes_test"}
    assert [e.step for e in acc.Images("images/mistakes_test")] == [100, 200]
    assert acc.Images("images/training")[0].encoded_image_string.startswith(b"\x89PNG")

    model, _ = runs.load_model(run_dir)
    params = dict(model.named_parameters())
    assert set(tags["histograms"]) == {f"weights/{name}" for name in params}
    for name, param in params.items():
        events = acc.Histograms(f"weights/{name}")
        assert [e.step for e in events] == [100, 200]
        last = events[-1].histogram_value  # the weights the run saved
        assert last.num == param.numel()
        assert last.min == pytest.approx(param.min().item()) and last.max == pytest.approx(param.max().item())


def test_the_option_changes_no_weight(logged_runs):
    with_dir, with_metrics, without_dir, without_metrics = logged_runs
    a, _ = runs.load_model(with_dir)
    b, _ = runs.load_model(without_dir)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert with_metrics["test_accuracy"] == without_metrics["test_accuracy"]
    assert not (without_dir / "tensorboard").exists()
    assert json.loads((with_dir / runs.CONFIG_FILE).read_text())["config"]["tensorboard"] is True


@pytest.mark.slow  # a fresh interpreter: torch's import and a short run, about 10 s
def test_a_run_without_the_option_never_loads_tensorboard(tmp_path, mnist):
    # The run tests on MNIST's first 1,000 test images (as short_mnist_everywhere does in
    # process): what is measured is what it imports, not how well it reads.
    code = ("import dataclasses, sys; from digitnet.cli import main; "
            "from digitnet.datasets import sources; real = sources.load_folder; "
            "sources.load_folder = lambda *a, **k: (lambda d: dataclasses.replace("
            "d, x_test=d.x_test[:1000], y_test=d.y_test[:1000]))(real(*a, **k)); "
            "code = main(['train', '--limit', '200', '--batch-size', '50', '--threads', '1', "
            f"'--out', {str(tmp_path / 'run')!r}]); "
            "loaded = [m for m in sys.modules if 'tensorboard' in m]; "
            "print('loaded', loaded); sys.exit(code or bool(loaded))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, DIGITNET_DATA=str(mnist.folder.parent)), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "loaded []" in done.stdout
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_missing_tensorboard_is_one_line_before_anything_runs(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    code, _, err = cli("train", "--tensorboard", "--limit", "100", "--out", tmp_path / "run")
    assert code == 2
    assert err.count("\n") == 1 and "pip install 'digitnet[tensorboard]'" in err, err
    assert not (tmp_path / "run").exists()
