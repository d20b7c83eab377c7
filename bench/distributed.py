"""Data parallel on one machine: 1 process with 2 threads against 2 processes with 1 thread each.

Each run trains the tutorial CNN for a fixed number of steps of the global batch (32 by default)
on the full training images, and reports the training time per step (data loading, start-up and
evaluation excluded). Then it estimates, from the measured step time and the gradient size, how
the speed would grow with more machines on a network of a given bandwidth.

    nice -n 10 python bench/distributed.py [--steps 200] [--repeats 3] [--gbits 10]

Needs PYTHONPATH to hold digitnet's src/ (or digitnet installed) and DIGITNET_DATA the datasets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PARAMETERS = 600_810  # the tutorial CNN
GRADIENT_BYTES = PARAMETERS * 4  # fp32: 2.4 MB exchanged per step


def worker(steps: int, batch: int, threads: int, out: Path) -> None:
    """One training run (under torchrun: one of its processes); rank 0 writes the timing."""
    import dataclasses

    from digitnet.datasets import load
    from digitnet.runs.config import TrainConfig
    from digitnet.training import distributed
    from digitnet.training.run import fit

    ds = load("mnist")
    ds = dataclasses.replace(ds, x_test=ds.x_test[:1000], y_test=ds.y_test[:1000])
    config = TrainConfig(limit=steps * batch, batch_size=batch, precision="fp32", threads=threads)
    metrics = fit(config, out / "run", dataset=ds)
    if distributed.launched_rank() == 0:
        (out / "timing.json").write_text(json.dumps({"seconds": metrics["train_seconds"],
                                                      "world_size": metrics["world_size"]}))
    distributed.shutdown()


def measure(nproc: int, threads: int, steps: int, batch: int, folder: Path) -> float:
    """Seconds per step of one run with ``nproc`` processes of ``threads`` threads."""
    shutil.rmtree(folder, ignore_errors=True)  # this bench's own run of an earlier invocation
    folder.mkdir(parents=True)
    cmd = [sys.executable, __file__, "--worker", "--steps", str(steps), "--batch", str(batch),
           "--threads", str(threads), "--out", str(folder)]
    if nproc > 1:
        cmd[1:1] = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((folder / "timing.json").read_text())["seconds"] / steps


def ring_allreduce_seconds(machines: int, gbits: float, latency: float = 50e-6) -> float:
    """A ring all-reduce sends 2(N-1)/N of the gradient per machine, in 2(N-1) latency-bound hops."""
    if machines == 1:
        return 0.0
    sent = 2 * (machines - 1) / machines * GRADIENT_BYTES
    return sent / (gbits * 1e9 / 8) + 2 * (machines - 1) * latency


def scaling_table(step: float, gbits: float) -> list[str]:
    """Speed-up over one machine when a fixed global batch is split over N machines.

    Each machine computes 1/N of the batch (step/N) and then waits for the all-reduce (no overlap
    assumed: the small model's backward pass ends before much of it could be hidden).
    """
    lines = [f"{'machines':>8} {'compute ms':>10} {'all-reduce ms':>13} {'step ms':>8} {'speed-up':>8}"]
    for n in (1, 2, 4, 8, 16):
        compute, comm = step / n, ring_allreduce_seconds(n, gbits)
        lines.append(f"{n:>8} {compute * 1e3:>10.2f} {comm * 1e3:>13.2f} {(compute + comm) * 1e3:>8.2f}"
                     f" {step / (compute + comm):>8.2f}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200, help="training steps per run (200)")
    p.add_argument("--batch", type=int, default=32, help="global batch (32, the tutorial's)")
    p.add_argument("--repeats", type=int, default=3, help="runs per layout; the median is kept (3)")
    p.add_argument("--gbits", type=float, default=10.0, help="network bandwidth for the estimate")
    p.add_argument("--out", type=Path, help="keep each measurement's run here (default: a "
                   "temporary folder, removed at the end)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.steps, args.batch, args.threads, args.out)
        return

    layouts = {"1 process x 2 threads": (1, 2), "2 processes x 1 thread": (2, 1),
               "1 process x 1 thread (reference)": (1, 1)}
    times: dict[str, list[float]] = {name: [] for name in layouts}
    with tempfile.TemporaryDirectory(prefix="digitnet-bench-distributed-") as scratch:
        out = args.out or Path(scratch)
        for i in range(args.repeats):  # interleaved, so a change in the machine's load hits all alike
            for name, (nproc, threads) in layouts.items():
                folder = out / f"{nproc}x{threads}-{i}"
                times[name].append(measure(nproc, threads, args.steps, args.batch, folder))
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name}: {medians[name] * 1e3:.1f} ms/step (median of "
              f"{', '.join(f'{x * 1e3:.1f}' for x in t)}), {args.steps} steps of {args.batch}")
    best = min(list(medians)[:2], key=medians.get)
    print(f"faster: {best}")
    fastest = min(medians, key=medians.get)
    one = medians[fastest]  # the best this machine does per step: the single-machine baseline
    print(f"\nEstimate for N machines, {args.gbits:g} Gbit/s, gradients {GRADIENT_BYTES / 1e6:.1f} MB"
          f" (fp32), global batch {args.batch}, one machine {one * 1e3:.1f} ms/step ({fastest}):")
    print("\n".join(scaling_table(one, args.gbits)))


if __name__ == "__main__":
    main()
