"""Shared fixtures: the real MNIST files, a tiny fast config, and one small trained run."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

# pytest-socket (pyproject's addopts) blocks this process's connections off the machine; npm
# runs in a subprocess, so it is told to use its cache only.
os.environ["NPM_CONFIG_OFFLINE"] = "true"  # npm reads its config case-insensitively

from digitnet.datasets import Dataset, load
from digitnet.errors import DigitnetError
from digitnet.training.config import TrainConfig
from digitnet.training.run import fit


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """MNIST from $DIGITNET_DATA (or the system folder / cache); never downloaded by tests."""
    try:
        return load("mnist")
    except DigitnetError as e:
        pytest.skip(f"MNIST files not available: {e}")


@pytest.fixture(scope="session")
def mnist_short_test(mnist) -> Dataset:
    """MNIST with only the first 1,000 test images: for tests of the training loop, where the
    test accuracy is not the point and evaluating 10,000 images each epoch is most of the time."""
    return dataclasses.replace(mnist, x_test=mnist.x_test[:1000], y_test=mnist.y_test[:1000])


@pytest.fixture
def tiny_config() -> TrainConfig:
    """A config that trains in a second or two: 1,000 images, one epoch, fp32."""
    return TrainConfig(limit=1000, epochs=1, batch_size=50, precision="fp32", eval_batch_size=2000)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist) -> Path:
    """The tutorial's network trained on 6,000 images for one epoch with a one-cycle schedule
    (94.1% on the test set): the one model that tests of prediction, export, pictures and
    serving share."""
    run_dir = tmp_path_factory.mktemp("runs") / "small"
    fit(TrainConfig(limit=6_000, epochs=1, lr=2e-3, schedule="onecycle", precision="fp32"), run_dir,
        dataset=mnist)
    return run_dir


@pytest.fixture
def cli(capsys):
    """Run ``digitnet`` in-process: cli(*argv) -> (exit code, stdout, stderr)."""
    from digitnet.cli import main

    def run(*argv: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory, trained_run) -> tuple[Path, int, str, str]:
    """A copy of ``trained_run`` exported to ONNX once through ``digitnet export``.

    Returns (run_dir, exit code, stdout, stderr); the export takes seconds, so tests that alter
    the run copy this directory instead of exporting again.
    """
    import contextlib
    import io
    import shutil

    from digitnet.cli import main

    run_dir = tmp_path_factory.mktemp("exported") / "small"
    shutil.copytree(trained_run, run_dir)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["export", "--run", str(run_dir), "--format", "onnx"])
    return run_dir, code, out.getvalue(), err.getvalue()
