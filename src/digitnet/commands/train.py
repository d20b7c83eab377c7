"""``digitnet train``: train a model (the Keras tutorial's settings by default) into a run directory."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from digitnet import atomic, plots, runs
from digitnet.commands.common import add_data_options, console
from digitnet.config import PRECISIONS, TrainConfig
from digitnet.datasets import get_spec
from digitnet.errors import DigitnetError
from digitnet.progress import ConsoleReporter
from digitnet.trainer import Interrupted, fit

# Options that map one-to-one onto TrainConfig fields; None means "keep the config's value".
OVERRIDES = ("dataset", "epochs", "batch_size", "lr", "seed", "limit", "validation",
             "precision", "threads", "device", "target_accuracy", "checkpoint_every")
# What may change when resuming: more epochs, and how the machine is used.
RESUMABLE = {"epochs", "threads", "checkpoint_every"}


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model and save it in a run directory")
    add_data_options(p)
    p.set_defaults(dataset=None)
    p.add_argument("--epochs", type=int, help="passes over the training set (default 1)")
    p.add_argument("--batch-size", type=int, help="images per step, over all processes (32)")
    p.add_argument("--lr", type=float, help="learning rate (1e-3)")
    p.add_argument("--seed", type=int, help="seed for weights, data order and dropout (0)")
    p.add_argument("--limit", type=int, help="train on the first N training images only")
    p.add_argument("--validation", type=int,
                   help="hold out the last N training images for validation (0)")
    p.add_argument("--target-accuracy", type=float,
                   help="stop once validation accuracy reaches this fraction (needs --validation)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="auto: bf16 where the CPU/GPU has it natively, else fp32")
    p.add_argument("--threads", type=int, help="torch threads (default: one per core)")
    p.add_argument("--device", help="auto, cpu, cuda or mps (auto)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels and fixed threads: reruns give identical weights")
    p.add_argument("--checkpoint-every", type=int, help="also checkpoint every N steps")
    p.add_argument("--out", type=Path, help="the run directory (default runs/<time>-<dataset>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted run to its planned end")
    p.set_defaults(run=run)


def given_overrides(args) -> dict:
    values = {name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None}
    if args.deterministic:
        values["deterministic"] = True
    return values


def build_config(args) -> tuple[TrainConfig, Path | None]:
    overrides = given_overrides(args)
    if args.resume is None:
        return TrainConfig(**overrides), args.out
    if args.out is not None and args.out != args.resume:
        raise DigitnetError("--resume continues in its own run directory; drop --out")
    _, saved = runs.load_checkpoint(args.resume)
    fixed = sorted(k for k, v in overrides.items() if k not in RESUMABLE and
                   getattr(saved, k) != v)
    if fixed:
        flags = ", ".join("--" + k.replace("_", "-") for k in fixed)
        raise DigitnetError(f"{flags} cannot change when resuming; start a new run instead")
    return dataclasses.replace(saved, **{k: overrides[k] for k in RESUMABLE & overrides.keys()}), \
        args.resume


def run(args) -> int:
    config, run_dir = build_config(args)
    reporter = ConsoleReporter()
    try:
        metrics = fit(config, run_dir, data_dir=args.data_dir, resume=args.resume is not None,
                      reporter=reporter)
    except Interrupted as stop:
        reporter.close()
        print(f"digitnet: {stop}; checkpoint saved. Resume with: "
              f"digitnet train --resume {stop.run_dir}", file=sys.stderr)
        return 130
    run_dir = Path(metrics["run_dir"])
    out = console()
    out.print(f"test accuracy {metrics['test_accuracy']:.4f}  test loss {metrics['test_loss']:.4f}"
              f"  ({metrics['train_seconds']:.1f} s training, {metrics['precision']})")
    out.print(f"run saved in {run_dir}")
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only process 0 writes, as fit does
        written = write_pictures(run_dir, metrics, get_spec(config.dataset).classes)
        out.print(f"pictures: {', '.join(map(str, written))}", soft_wrap=True, markup=False)
    return 0


def write_pictures(run_dir: Path, metrics: dict, classes: tuple[str, ...]) -> list[Path]:
    """history.png and confusion.png from the metrics ``fit`` returned; their paths."""
    written = []
    for name, fig in plots.training(metrics, classes, run_dir.name).items():
        atomic.write_bytes(run_dir / name, plots.to_png(fig))
        written.append(run_dir / name)
    return written
