"""Shared fixtures: the real MNIST files, a tiny fast config, and one small trained run.

Outside CI a test whose real component is missing (the MNIST files, Chromium, the browser
runtime) skips and says why. With ``CI=true`` the same test fails instead: a CI run that
passes by skipping a third of the suite proves nothing.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

# pytest-socket (pyproject's addopts) blocks this process's connections off the machine; npm
# runs in a subprocess, so it is told to use its cache only.
os.environ["NPM_CONFIG_OFFLINE"] = "true"  # npm reads its config case-insensitively

from digitnet.datasets import Dataset, load, sources
from digitnet.datasets.sources import find_files
from digitnet.errors import DigitnetError
from digitnet.runs.config import TrainConfig
from digitnet.training.run import fit
from digitnet.web import browser_runtime


def in_ci() -> bool:
    """True under CI: ``CI=true`` (or 1), as CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def missing(reason: str) -> None:
    """A real component the test needs is absent: skip and say why, or fail under CI."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def missing_component():
    """``missing_component(reason)``: skip saying why, or fail under CI (for conftests below)."""
    return missing


def pytest_configure(config):
    """Under pytest-xdist, one torch thread per worker and per process it starts: with a worker
    per core, torch's default of a thread per core puts two threads on each core, and every
    operation then waits at its barrier for a thread the other worker has descheduled. Tests
    that need a count of threads (bit-exact runs) set it themselves."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
        os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a skip for want of the browser runtime fails: the tests that need it skip
    with ``browser_runtime.missing()`` in their own fixtures."""
    report = (yield).get_result()
    if not (in_ci() and report.skipped and call.excinfo is not None):
        return
    reason = str(call.excinfo.value)
    if reason == browser_runtime.missing():
        report.outcome, report.longrepr = "failed", f"CI=true and {reason}"


def pytest_collection_modifyitems(items):
    """Files with the most slow tests first, each file's tests in their own order: pytest-xdist
    (``--dist loadfile``) hands out files in this order as workers free up, so the long ones
    start early and the short ones even out the end, rather than one worker starting a long
    file as the other runs dry."""
    slow: dict[str, int] = {}
    for item in items:
        slow[item.nodeid.split("::")[0]] = slow.get(item.nodeid.split("::")[0], 0) + (
            item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.nodeid.split("::")[0]])


def load_mnist() -> Dataset:
    """MNIST from $DIGITNET_DATA (or the system folder / cache); never downloaded by tests.

    Under CI a $DIGITNET_DATA without MNIST is a mistake of the set-up, even when a cached copy
    elsewhere would do: the run would not test the files it was given.
    """
    env = os.environ.get("DIGITNET_DATA")
    if in_ci() and env and find_files(Path(env) / "mnist") is None:
        missing(f"MNIST files not available: $DIGITNET_DATA={env} holds no mnist/ folder with the "
                "four IDX files; point it at the datasets folder")
    try:
        return load("mnist")
    except DigitnetError as e:
        missing(f"MNIST files not available: {e}")


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    return load_mnist()


@pytest.fixture(scope="session")
def mnist_short_test(mnist) -> Dataset:
    """MNIST with only the first 1,000 test images: for tests of the training loop, where the
    test accuracy is not the point and evaluating 10,000 images each epoch is most of the time."""
    return dataclasses.replace(mnist, x_test=mnist.x_test[:1000], y_test=mnist.y_test[:1000])


@pytest.fixture
def tiny_config() -> TrainConfig:
    """A config that trains in a second or two: 1,000 images, one epoch, fp32."""
    return TrainConfig(limit=1000, epochs=1, batch_size=50, precision="fp32", eval_batch_size=2000)


@pytest.fixture
def short_mnist_everywhere(monkeypatch, mnist_short_test) -> Dataset:
    """Every load of MNIST in this process, the commands' own included, gives ``mnist_short_test``
    (1,000 test images): for tests of commands that measure on the test set, where the figure
    is not the point and measuring 10,000 images is most of the time. Reading and checking the
    files is tested in tests/datasets."""
    real = sources.load_folder

    def load_folder(folder, spec, origin):
        return mnist_short_test if spec.name == "mnist" else real(folder, spec, origin)

    monkeypatch.setattr(sources, "load_folder", load_folder)
    return mnist_short_test


def train_small(run_dir: Path, mnist: Dataset) -> None:
    fit(TrainConfig(limit=6_000, epochs=1, lr=2e-3, schedule="onecycle", precision="fp32"), run_dir,
        dataset=mnist)


def made_once(tmp_path_factory, worker_id: str, name: str, make: Callable[[Path], object]
              ) -> tuple[Path, object]:
    """A folder filled by ``make(folder)``, and what ``make`` returned (JSON): made once for all
    workers, and each worker gets its own copy (tests may write beside it).

    Under pytest-xdist the first worker to ask makes it in the run's common temporary folder,
    under a file lock, and the others wait for it: each would otherwise spend the same seconds
    of the two cores making the same files."""
    own = tmp_path_factory.mktemp(name) / "small"
    if worker_id == "master":
        return own, make(own)
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, above each worker's own
    made, done = shared / name / "small", shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker makes it, the others wait
        if not done.is_file():
            shutil.rmtree(made, ignore_errors=True)  # what a failed try left
            done.write_text(json.dumps(make(made)))
    shutil.copytree(made, own)
    return own, json.loads(done.read_text())


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist, worker_id) -> Path:
    """The tutorial's network trained on 6,000 images for one epoch with a one-cycle schedule
    (94.1% on the test set): the one model that tests of prediction, export, pictures and
    serving share, trained once for all workers (``made_once``)."""
    return made_once(tmp_path_factory, worker_id, "trained_run", lambda d: train_small(d, mnist))[0]


@pytest.fixture
def cli(capsys):
    """Run ``digitnet`` in-process: cli(*argv) -> (exit code, stdout, stderr)."""
    from digitnet.cli import main

    def run(*argv: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def count_reads(monkeypatch):
    """count_reads(run_dir) -> a Counter of how often each file of ``run_dir`` is opened for
    reading from then on, by Python or by onnxruntime (which opens a model file given by name
    itself): what a consumer of a run reads of it."""
    import builtins
    import collections
    import io

    import onnxruntime

    def start(run_dir: Path) -> collections.Counter:
        counts: collections.Counter = collections.Counter()
        real_open, real_session = io.open, onnxruntime.InferenceSession

        def counting_open(file, mode="r", *args, **kwargs):
            if isinstance(file, str | Path) and Path(file).parent == run_dir and "r" in mode:
                counts[Path(file).name] += 1
            return real_open(file, mode, *args, **kwargs)

        def counting_session(model, *args, **kwargs):
            if isinstance(model, str) and Path(model).parent == run_dir:
                counts[Path(model).name] += 1
            return real_session(model, *args, **kwargs)

        monkeypatch.setattr(io, "open", counting_open)  # pathlib's read_bytes and read_text use it
        monkeypatch.setattr(builtins, "open", counting_open)  # open() itself, as shutil's copies call it
        monkeypatch.setattr(onnxruntime, "InferenceSession", counting_session)
        return counts

    return start


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory, trained_run, worker_id) -> tuple[Path, int, str, str]:
    """A copy of ``trained_run`` exported to ONNX once through ``digitnet export``, for all
    workers (``made_once``).

    Returns (run_dir, exit code, stdout, stderr); the export takes seconds, so tests that alter
    the run copy this directory instead of exporting again.
    """
    import contextlib
    import io

    from digitnet.cli import main

    def export(run_dir: Path) -> list:
        shutil.copytree(trained_run, run_dir)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["export", "--run", str(run_dir), "--format", "onnx"])
        return [str(run_dir), code, out.getvalue(), err.getvalue()]

    run_dir, (made, code, out, err) = made_once(tmp_path_factory, worker_id, "exported_run", export)
    # What the command said names the folder it exported: here, this worker's copy of it.
    return run_dir, code, out.replace(made, str(run_dir)), err.replace(made, str(run_dir))
