"""Run training jobs in a fresh process (plain python or every process of a torchrun launch).

Tests start this as a subprocess so several jobs share one interpreter start-up (importing
torch is most of a small run's time). Usage: ``python run_jobs.py JOBS.json`` where the file
holds a list of jobs:
  {"kind": "fit", "config": {...TrainConfig...}, "run_dir": path or null, "resume": bool,
   "cwd": path, "test_images": N, "stop_at": step or null}
      -> digitnet.training.run.fit on MNIST with its first N test images; with "stop_at", process 0
         sends itself SIGTERM after that step (the others must stop at the same step)
  {"kind": "cli", "argv": [...], "cwd": path}  -> digitnet.cli.main(argv)
A job's exit code other than 0 (the CLI's) ends the process with that code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path


class StopAt:
    """A reporter that sends this process SIGTERM after step ``n``, as Ctrl-C would."""

    def __init__(self, n: int) -> None:
        self.n = n

    def start_epoch(self, epoch, epochs, steps, done) -> None: ...
    def end_epoch(self, epoch, record) -> None: ...

    def step(self, done, stats) -> None:
        if done == self.n:
            os.kill(os.getpid(), signal.SIGTERM)


def run(job: dict) -> int:
    from digitnet.cli import main
    from digitnet.datasets import load
    from digitnet.runs.config import TrainConfig
    from digitnet.training.run import Interrupted, fit

    os.chdir(job["cwd"])
    if job["kind"] == "cli":
        return main(job["argv"])
    ds = load("mnist")
    n = job["test_images"]
    ds = dataclasses.replace(ds, x_test=ds.x_test[:n], y_test=ds.y_test[:n])
    run_dir = None if job["run_dir"] is None else Path(job["run_dir"])
    reporter = StopAt(job["stop_at"]) if job.get("stop_at") else None
    try:
        fit(TrainConfig.from_dict(job["config"]), run_dir, dataset=ds, resume=job["resume"],
            reporter=reporter)
    except Interrupted:
        if reporter is None:
            raise
    return 0


if __name__ == "__main__":
    from digitnet.training import distributed

    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    try:
        code = next((code for code in map(run, jobs) if code), 0)
    except BaseException:
        distributed.shutdown()
        raise
    # As `torchrun -m digitnet` does: no interpreter teardown with gloo's threads still alive.
    sys.exit(distributed.end_launched_process(code))
