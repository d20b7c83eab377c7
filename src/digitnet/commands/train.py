"""``digitnet train``: train a model (the Keras tutorial's settings by default) into a run directory."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from digitnet import atomic
from digitnet.commands.common import console
from digitnet.commands.progress import ConsoleReporter
from digitnet.errors import DigitnetError
from digitnet.plots import figures
from digitnet.runs.config import TrainConfig
from digitnet.training import checkpoints, distributed, recipes
from digitnet.training.ensemble import fit_ensemble
from digitnet.training.run import Interrupted, fit

# What may change when resuming: more epochs, and how the machine is used.
RESUMABLE = {"epochs", "threads", "checkpoint_every", "device", "tensorboard"}
TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def recipe_values(name: str) -> str:
    """'; fast: 64, speedrun: 128' for the recipes that set field ``name``, else ''."""
    values = [f"{recipe}: {preset[name]}" for recipe, preset in recipes.RECIPES.items()
              if name in preset]
    return f"; {', '.join(values)}" if values else ""


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, its help and default taken from the field itself.

    Every option defaults to None, meaning "keep the recipe's value", so what a user typed is
    told apart from a default.
    """
    for f in TrainConfig.options():
        flag = "--" + f.name.replace("_", "-")
        kind = TYPES[f.type] if isinstance(f.type, str) else f.type
        text = f"{f.metadata['help']} (default {f.default}{recipe_values(f.name)})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, type=kind, default=None, choices=f.metadata["choices"],
                                metavar=None if f.metadata["choices"] else f.name.upper(), help=text)


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model and save it in a run directory",
                       description="Train a model into a run directory. Without options: the "
                                   "Keras tutorial (Adam 1e-3, batch 32, one epoch).")
    p.add_argument("--recipe", choices=tuple(recipes.RECIPES),
                   help=("preset to start from: " + "; ".join(
                       f"{name}: {text}" for name, text in recipes.DESCRIPTIONS.items())
                       + " (default tutorial); the options below override its values"
                         ).replace("%", "%%"))
    add_config_options(p)
    p.add_argument("--data-dir", default=None,
                   help="folder with the IDX files (default: $DIGITNET_DATA, system, cache)")
    p.add_argument("--ensemble", type=int, metavar="K",
                   help="train K models (seeds seed..seed+K-1) into RUN_DIR/member-<k>/ and "
                        "measure their averaged probabilities")
    p.add_argument("--out", type=Path, help="the run directory (default runs/<time>-<dataset>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted run to its planned end")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config (recipe, then options) and exit")
    p.set_defaults(run=run)


def given_overrides(args) -> dict:
    return {f.name: getattr(args, f.name) for f in TrainConfig.options()
            if getattr(args, f.name) is not None}


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
    if args.dry_run:
        console().print_json(json.dumps(config.to_dict()))
        return 0
    if run_dir is not None and args.resume is None:
        atomic.check_folder(run_dir)  # before the data is loaded, not after
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
    if config.tensorboard:
        out.print(f"TensorBoard: tensorboard --logdir {run_dir}", markup=False)
    written = write_pictures(run_dir, metrics, config)
    out.print(f"pictures: {', '.join(map(str, written))}", markup=False)
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


def write_pictures(run_dir: Path, metrics: dict, config: TrainConfig) -> list[Path]:
    """history.png and confusion.png from the metrics ``fit`` returned; their paths."""
    written = []
    for name, fig in figures.training(metrics, config.classes, run_dir.name,
                                      config.dataset).items():
        atomic.write_bytes(run_dir / name, figures.to_png(fig))
        written.append(run_dir / name)
    return written
