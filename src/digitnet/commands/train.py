"""``digitnet train``: train a model (the Keras tutorial's settings by default) into a run directory."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from digitnet import atomic
from digitnet.commands.common import add_data_options, console
from digitnet.commands.progress import ConsoleReporter
from digitnet.datasets import get_spec
from digitnet.errors import DigitnetError
from digitnet.plots import figures
from digitnet.training import checkpoints, distributed, recipes
from digitnet.training.config import PRECISIONS, TrainConfig
from digitnet.training.ensemble import fit_ensemble
from digitnet.training.run import Interrupted, fit

# Options that map one-to-one onto TrainConfig fields; None means "keep the config's value".
OVERRIDES = ("dataset", "epochs", "batch_size", "lr", "seed", "limit", "validation",
             "precision", "threads", "device", "target_accuracy", "checkpoint_every")
DEVICES = ("auto", "cpu", "cuda", "mps")
# What may change when resuming: more epochs, and how the machine is used.
RESUMABLE = {"epochs", "threads", "checkpoint_every", "device"}


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model and save it in a run directory")
    add_data_options(p)
    p.set_defaults(dataset=None)
    p.add_argument("--recipe", choices=tuple(recipes.RECIPES),
                   help="preset to start from: tutorial (default, the Keras tutorial's settings), "
                        "fast, speedrun or accurate; the other options override its values")
    p.add_argument("--ensemble", type=int, metavar="K",
                   help="train K models (seeds seed..seed+K-1) into RUN_DIR/member-<k>/ and "
                        "measure their averaged probabilities")
    p.add_argument("--epochs", type=int, help="passes over the training set (default 1)")
    p.add_argument("--batch-size", type=int,
                   help="images per step over ALL processes (the global batch), so the learning "
                        "rate needs no change under torchrun (32)")
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
    p.add_argument("--device", choices=DEVICES,
                   help="auto (default): a CUDA or Apple GPU when there is one, else cpu")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels, every seed and a fixed thread count: a rerun with "
                        "the same seed, fp32 and number of processes gives identical weights")
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
        return recipes.resolve(args.recipe or "tutorial", overrides), args.out
    if args.ensemble is not None:
        raise DigitnetError("--ensemble cannot be resumed; resume a member run instead")
    if args.recipe is not None:
        overrides["recipe"] = args.recipe
    if args.out is not None and args.out != args.resume:
        raise DigitnetError("--resume continues in its own run directory; drop --out")
    _, saved = checkpoints.load_checkpoint(args.resume)
    fixed = sorted(k for k, v in overrides.items() if k not in RESUMABLE and
                   getattr(saved, k) != v)
    if fixed:
        flags = ", ".join("--" + k.replace("_", "-") for k in fixed)
        raise DigitnetError(f"{flags} cannot change when resuming; start a new run instead")
    return dataclasses.replace(saved, **{k: overrides[k] for k in RESUMABLE & overrides.keys()}), \
        args.resume


def resume_command(run_dir: Path) -> str:
    """How to continue, with the launcher used now (under torchrun, on one or several machines)."""
    local, world = os.environ.get("LOCAL_WORLD_SIZE"), os.environ.get("WORLD_SIZE")
    if local is None:
        return f"digitnet train --resume {run_dir}"
    launcher = (f"torchrun --standalone --nproc-per-node {local}" if local == world
                else "torchrun <the same torchrun options on every machine>")
    return f"{launcher} -m digitnet train --resume {run_dir}"


def run(args) -> int:
    config, run_dir = build_config(args)
    reporter = ConsoleReporter()
    main = distributed.launched_rank() == 0  # under torchrun only process 0 prints
    try:
        if args.ensemble is not None:
            return run_ensemble(config, run_dir, args, reporter)
        metrics = fit(config, run_dir, data_dir=args.data_dir, resume=args.resume is not None,
                      reporter=reporter)
    except Interrupted as stop:
        reporter.close()
        if main:
            print(f"digitnet: {stop}; checkpoint saved. Resume with: {resume_command(stop.run_dir)}",
                  file=sys.stderr)
        return 130
    finally:
        distributed.shutdown()
    if not main:
        return 0
    run_dir = Path(metrics["run_dir"])
    out = console()
    out.print(f"test accuracy {metrics['test_accuracy']:.4f}  test loss {metrics['test_loss']:.4f}"
              f"  ({metrics['train_seconds']:.1f} s training, {metrics['precision']})")
    out.print(f"run saved in {run_dir}")
    written = write_pictures(run_dir, metrics, get_spec(config.dataset).classes)
    out.print(f"pictures: {', '.join(map(str, written))}", soft_wrap=True, markup=False)
    return 0


def run_ensemble(config: TrainConfig, run_dir: Path | None, args, reporter: ConsoleReporter) -> int:
    metrics = fit_ensemble(config, args.ensemble, run_dir, data_dir=args.data_dir, reporter=reporter)
    out = console()
    for member in metrics["members"]:
        out.print(f"member seed {member['seed']}: test accuracy {member['test_accuracy']:.4f}")
    out.print(f"ensemble of {metrics['ensemble']}: test accuracy {metrics['test_accuracy']:.4f}"
              f"  ({metrics['train_seconds']:.1f} s training in all)")
    out.print(f"run saved in {metrics['run_dir']}")
    return 0


def write_pictures(run_dir: Path, metrics: dict, classes: tuple[str, ...]) -> list[Path]:
    """history.png and confusion.png from the metrics ``fit`` returned; their paths."""
    written = []
    for name, fig in figures.training(metrics, classes, run_dir.name).items():
        atomic.write_bytes(run_dir / name, figures.to_png(fig))
        written.append(run_dir / name)
    return written
