"""Data-parallel training under torchrun: 2 gloo processes on this machine against 1 process.

One torchrun launch runs all the multi-process jobs (starting Python and torch is most of the
cost); the tests then check what it wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import digitnet
from digitnet import runs
from digitnet.errors import DigitnetError
from digitnet.runs.config import TrainConfig
from digitnet.training import distributed, seeding
from digitnet.training.epoch import check_shards
from digitnet.training.hooks import SilentReporter
from digitnet.training.run import Interrupted, fit

RUN_JOBS = Path(__file__).with_name("run_jobs.py")
SRC = Path(digitnet.__file__).resolve().parents[1]
TEST_IMAGES = 1000  # the runs measure on the first 1,000 test images: enough to compare
# Without dropout no random draws happen after the initial weights, so 2 processes must follow
# the 1-process run up to the rounding of the split gradient sums. SGD, not Adam: Adam divides
# each update by the gradient's own size, so it would hide a wrongly scaled gradient, and in its
# first steps it turns rounding noise in near-cancelling gradients into lr-sized differences
# (measured: up to 2.7e-3 after these 16 steps with Adam at lr 1e-3).
DROPLESS = dict(limit=1000, batch_size=64, epochs=1, precision="fp32", optimizer="sgd", lr=0.05,
                model_args={"dropout_conv": 0.0, "dropout_dense": 0.0})
# Measured: with SGD, 2-process and 1-process weights differ by at most 3.0e-8 after 16 steps
# on AVX-512 CPUs and 9.9e-7 on an AVX2-only AMD EPYC, whose NHWC convolution kernels sum a
# 32-image share in another order than 64 images (torch 2.13, CPU, gloo). docs/distributed.md
# promises 2e-6, which a wrongly scaled gradient would exceed by far.
WEIGHT_TOLERANCE = 2e-6


def launch(jobs: list[dict], folder: Path, nproc: int) -> subprocess.CompletedProcess:
    """Run ``jobs`` (see run_jobs.py) in ``nproc`` processes: torchrun when more than one."""
    spec = folder / f"jobs-{nproc}.json"
    spec.write_text(json.dumps(jobs))
    cmd = [sys.executable, str(RUN_JOBS), str(spec)]
    if nproc > 1:
        cmd[1:1] = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    env = os.environ | {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def last_words(stderr: str, lines: int = 12) -> str:
    """What each rank printed last: when one rank fails, the other's error only says the peer
    closed the connection, and the cause sits in the middle of the launcher's output."""
    by_rank: dict[str, list[str]] = {}
    for line in stderr.splitlines():
        if line.startswith("[rank"):
            by_rank.setdefault(line.split("]", 1)[0] + "]", []).append(line)
    told = ["\n".join(said[-lines:]) for said in by_rank.values()]
    return "\n...\n".join(told + [stderr[-1500:]])


def fit_job(config: TrainConfig, cwd: Path, run_dir: Path | None = None, resume: bool = False,
            stop_at: int | None = None):
    cwd.mkdir(parents=True, exist_ok=True)
    return {"kind": "fit", "config": config.to_dict(), "cwd": str(cwd), "resume": resume,
            "run_dir": None if run_dir is None else str(run_dir), "test_images": TEST_IMAGES,
            "stop_at": stop_at}


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    tensors, _ = runs.read_safetensors(run_dir / runs.MODEL_FILE, "weights")
    return tensors


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def only_run_dir(cwd: Path) -> Path:
    found = list((cwd / "runs").iterdir())
    assert len(found) == 1, found
    return found[0]


class StopAt(SilentReporter):
    """Sends this process SIGTERM after step ``n``, as a user's Ctrl-C would."""

    def __init__(self, n: int) -> None:
        self.n = n

    def step(self, done, stats) -> None:
        if done == self.n:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="module")
def small_mnist(mnist):
    import dataclasses

    return dataclasses.replace(mnist, x_test=mnist.x_test[:TEST_IMAGES],
                               y_test=mnist.y_test[:TEST_IMAGES])


@pytest.fixture(scope="module")
def launched(tmp_path_factory, small_mnist):
    """The 1-process reference run, and one 2-process torchrun launch with all its jobs."""
    root = tmp_path_factory.mktemp("ddp")
    config = TrainConfig(**DROPLESS)
    # The 1-process runs use torch's threads as this process has them, which a test run before
    # in the same process may have changed, and the split of a sum over threads moves its last
    # bits: pinned to the two a fresh process on the 2-core machines gets, whatever ran before.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fit(config, root / "one", dataset=small_mnist)
        with pytest.raises(Interrupted) as stop:  # a 1-process run stopped mid-epoch, to resume on 2
            fit(config, root / "cut", dataset=small_mnist, reporter=StopAt(5))
    finally:
        torch.set_num_threads(before)
    deterministic = config.replace(deterministic=True)
    # The tutorial's dropout and an EMA: per-process random streams and averaged weights to restore.
    with_dropout = TrainConfig(limit=1000, batch_size=64, precision="fp32", ema=0.9,
                               deterministic=True)
    jobs = [
        fit_job(deterministic, root / "fresh"),
        fit_job(config, root, root / "cut", resume=True),
        fit_job(with_dropout, root, root / "whole"),
        fit_job(with_dropout, root, root / "stopped", stop_at=5),
        fit_job(with_dropout, root, root / "stopped", resume=True),
        {"kind": "cli", "cwd": str(root / "cli"),
         "argv": ["train", "--limit", "640", "--batch-size", "64", "--precision", "fp32"]},
    ]
    (root / "cli").mkdir()
    done = launch(jobs, root, nproc=2)
    assert done.returncode == 0, last_words(done.stderr)
    assert "terminate called" not in done.stderr
    return root, done, stop.value


@pytest.mark.slow
def test_two_processes_end_like_one_with_the_same_global_batch(launched):
    root, _, _ = launched
    two = only_run_dir(root / "fresh")  # exactly one run directory, named by process 0
    one, other = weights(root / "one"), weights(two)
    worst = max((one[k] - other[k]).abs().max().item() for k in one)
    assert worst < WEIGHT_TOLERANCE
    assert any((one[k] != other[k]).any() for k in one)  # two real processes, not one run twice
    assert runs.read_metrics(two)["world_size"] == 2
    saved = json.loads((two / runs.CONFIG_FILE).read_text())
    assert saved["world_size"] == 2 and saved["threads"] == 1


@pytest.mark.slow
def test_two_process_run_stopped_by_a_signal_resumes_to_the_same_bits(launched):
    root, _, _ = launched
    # Only process 0 got SIGTERM after step 5; both stopped there and one checkpoint was saved.
    history = runs.read_metrics(root / "stopped")["history"]
    assert history["resumed"] == [{"epoch": 1, "step": 5, "world_size": 2}]
    assert sha256(root / "stopped" / runs.MODEL_FILE) == sha256(root / "whole" / runs.MODEL_FILE)


@pytest.mark.slow
def test_run_stopped_on_one_process_resumes_on_two(launched):
    root, _, stop = launched
    assert 0 < stop.step < 16  # it really stopped mid-epoch
    metrics = runs.read_metrics(root / "cut")
    assert metrics["world_size"] == 2
    assert metrics["history"]["resumed"] == [{"epoch": 1, "step": stop.step, "world_size": 2}]
    # Without dropout the resumed run follows the uninterrupted one up to rounding.
    one, resumed = weights(root / "one"), weights(root / "cut")
    assert max((one[k] - resumed[k]).abs().max().item() for k in one) < WEIGHT_TOLERANCE
    # The epoch's training loss counts the steps before the stop too.
    reference = runs.read_metrics(root / "one")["history"]["epochs"][0]["train_loss"]
    assert metrics["history"]["epochs"][0]["train_loss"] == pytest.approx(reference, rel=1e-4)


@pytest.mark.slow
def test_cli_under_torchrun_writes_one_run_and_prints_once(launched):
    root, done, _ = launched
    run_dir = only_run_dir(root / "cli")
    assert done.stdout.count("run saved in") == 1
    assert done.stdout.count("test accuracy") == 1
    assert runs.read_metrics(run_dir)["world_size"] == 2


def test_every_process_needs_a_share_of_every_batch():
    check_shards(1000, 64, 2)  # last batch 40: fine
    with pytest.raises(DigitnetError, match="last batch of 1"):
        check_shards(1001, 50, 2)
    with pytest.raises(DigitnetError, match="--batch-size"):
        check_shards(1000, 1, 2)


def test_processes_draw_different_dropout_masks_from_one_seed():
    seeds = {seeding.stream_seed(0, rank) for rank in range(8)}
    assert len(seeds) == 8
    assert seeding.stream_seed(0, 1) == seeding.stream_seed(0, 1)
    assert seeding.stream_seed(0, 1, step=5) != seeding.stream_seed(0, 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_asking_for_a_missing_gpu_is_one_clear_error(cli):
    code, _, err = cli("train", "--device", "cuda", "--limit", "100")
    assert code == 2
    assert err.strip() == ("digitnet: error: --device cuda: no CUDA GPU is visible; "
                           "use --device cpu or auto")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_uses_bf16_and_channels_last(tmp_path, small_mnist):
    metrics = fit(TrainConfig(limit=1000, batch_size=64, device="cuda"), tmp_path / "gpu",
                  dataset=small_mnist)
    saved = json.loads((tmp_path / "gpu" / runs.CONFIG_FILE).read_text())
    assert metrics["device"] == "cuda"
    assert saved["channels_last"] == (metrics["precision"] == "bf16")
    assert metrics["test_accuracy"] > 0.5


def test_resume_hint_names_the_launcher_in_use(monkeypatch):
    from digitnet.commands.train import resume_command

    for name in ("LOCAL_WORLD_SIZE", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert resume_command(Path("runs/x")) == "digitnet train --resume runs/x"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resume_command(Path("runs/x")) == (
        "torchrun --standalone --nproc-per-node 2 -m digitnet train --resume runs/x")
    monkeypatch.setenv("WORLD_SIZE", "4")  # two machines
    assert resume_command(Path("runs/x")).startswith("torchrun <the same torchrun options")


# Builds a DDP module in a 1-process gloo group, destroys the group and says whether the group
# object is still alive; ends with os._exit so this process's own teardown cannot abort.
GROUP_AFTER_DESTROY = """
import os, sys, tempfile, weakref
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

dist.init_process_group("gloo", init_method=f"file://{tempfile.mktemp()}", rank=0, world_size=1)
if sys.argv[1] == "ddp":
    model = DistributedDataParallel(nn.Linear(4, 2))
    model(torch.ones(3, 4)).sum().backward()
    del model
group = weakref.ref(dist.group.WORLD)
dist.destroy_process_group()
print("alive" if group() is not None else "freed", flush=True)
os._exit(0)
"""


@pytest.mark.slow
def test_ddp_keeps_the_group_alive_after_destroy():
    """Why launched processes end with os._exit: DistributedDataParallel leaves references to
    the process group, so destroy_process_group() cannot free it and its gloo threads are torn
    down with the interpreter (where they sometimes abort the process). If a torch release
    frees the group, this fails, and end_launched_process can go back to a normal exit."""
    def after_destroy(mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", GROUP_AFTER_DESTROY, mode], capture_output=True,
                              text=True, timeout=300, env=os.environ | {"OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, last_words(done.stderr)
        return done.stdout.strip()

    assert after_destroy("plain") == "freed"
    assert after_destroy("ddp") == "alive"


def test_a_launched_process_ends_without_interpreter_teardown(monkeypatch):
    exits = []
    monkeypatch.setattr(distributed.os, "_exit", exits.append)  # the real one would end pytest
    monkeypatch.setenv("WORLD_SIZE", "2")
    distributed.end_launched_process(3)
    assert exits == [3]
    monkeypatch.setenv("WORLD_SIZE", "1")  # not launched by torchrun: a normal exit
    assert distributed.end_launched_process(0) == 0
    assert exits == [3]
