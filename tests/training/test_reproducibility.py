"""Bitwise reproducible runs: same seed, fp32, deterministic mode give identical files, and a run
killed at any step and resumed from its checkpoint ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import digitnet
from digitnet import runs
from digitnet.runs.config import TrainConfig
from digitnet.training import checkpoints, seeding
from digitnet.training.run import fit

RUN_JOBS = Path(__file__).with_name("run_jobs.py")
SRC = Path(digitnet.__file__).resolve().parents[1]
TEST_IMAGES = 500
# Dropout on (the tutorial's model), EMA on, 2 epochs of 10 steps, a checkpoint every 3 steps.
CONFIG = TrainConfig(limit=500, batch_size=50, epochs=2, precision="fp32", ema=0.9,
                     deterministic=True, checkpoint_every=3)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_mnist(mnist):
    return dataclasses.replace(mnist, x_test=mnist.x_test[:TEST_IMAGES],
                               y_test=mnist.y_test[:TEST_IMAGES])


@pytest.fixture(scope="module")
def torch_settings():
    """Deterministic mode changes process-wide torch settings: put them back for other tests."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, small_mnist, torch_settings):
    root = tmp_path_factory.mktemp("repro")
    for name in ("a", "b"):
        fit(CONFIG, root / name, dataset=small_mnist)
    return root


@pytest.mark.slow
def test_two_deterministic_runs_write_identical_weights(two_runs):
    a, b = two_runs / "a", two_runs / "b"
    assert sha256(a / runs.MODEL_FILE) == sha256(b / runs.MODEL_FILE)


@pytest.mark.slow
def test_config_records_what_a_rerun_needs(two_runs):
    saved = json.loads((two_runs / "a" / runs.CONFIG_FILE).read_text())
    assert saved["config"]["seed"] == 0 and saved["config"]["deterministic"] is True
    assert saved["config"]["recipe"] == "tutorial"
    assert saved["world_size"] == 1
    assert saved["threads"] == os.cpu_count()  # deterministic mode pins one thread per core
    assert saved["environment"]["torch"] == torch.__version__
    assert saved["environment"]["numpy"] == np.__version__
    assert saved["dataset"]["sha256"]


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_same_bits(two_runs, tmp_path, small_mnist,
                                                       torch_settings):
    run_dir = tmp_path / "killed"
    job = {"kind": "fit", "config": CONFIG.to_dict(), "cwd": str(tmp_path), "resume": False,
           "run_dir": str(run_dir), "test_images": TEST_IMAGES}
    spec = tmp_path / "jobs.json"
    spec.write_text(json.dumps([job]))
    env = os.environ | {"PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, str(RUN_JOBS), str(spec)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        checkpoint = run_dir / checkpoints.CHECKPOINT_FILE
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # no handler, no last checkpoint: as a power cut
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    ckpt, _ = checkpoints.load_checkpoint(run_dir)
    assert (ckpt.epoch, ckpt.step) < (CONFIG.epochs, 0)  # killed before the end
    assert not (run_dir / runs.MODEL_FILE).exists()

    fit(CONFIG, run_dir, dataset=small_mnist, resume=True)
    assert sha256(run_dir / runs.MODEL_FILE) == sha256(two_runs / "a" / runs.MODEL_FILE)
    # The epochs' records come out as in the uninterrupted run, the steps before the kill included.
    resumed = runs.read_metrics(run_dir)["history"]
    whole = runs.read_metrics(two_runs / "a")["history"]
    for got, want in zip(resumed["epochs"], whole["epochs"], strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-12)
        assert got["test_accuracy"] == want["test_accuracy"]
    assert resumed["resumed"] == [{"epoch": ckpt.epoch + 1, "step": ckpt.step, "world_size": 1}]


def test_sigterm_saves_a_checkpoint_and_prints_the_resume_command(cli, tmp_path):
    run_dir = tmp_path / "stopped"
    checkpoint = run_dir / checkpoints.CHECKPOINT_FILE

    def stop_after_first_checkpoint():
        while not checkpoint.exists():
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    # 100 steps: the signal lands long before the end (a first checkpoint comes at step 2).
    watcher = threading.Thread(target=stop_after_first_checkpoint, daemon=True)
    watcher.start()
    code, _, err = cli("train", "--limit", "3200", "--batch-size", "32", "--precision", "fp32",
                       "--checkpoint-every", "2", "--out", run_dir)
    watcher.join(timeout=5)
    assert code == 130
    ckpt, _ = checkpoints.load_checkpoint(run_dir)
    last = err.strip().splitlines()[-1]
    assert last == (f"digitnet: interrupted at epoch 1, step {ckpt.step}; checkpoint saved. "
                    f"Resume with: digitnet train --resume {run_dir}")
    assert 2 <= ckpt.step < 100


def test_random_streams_round_trip_through_a_checkpoint():
    device = torch.device("cpu")
    seeding.seed_streams(3, rank=1)
    state = seeding.rng_state(device)
    import random

    first = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    seeding.seed_streams(4, rank=0)
    seeding.set_rng_state(state, device)
    again = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2] == again[2]
