"""``digitnet train-lines``: train the line reader that ``digitnet read`` uses (the defaults
made the one shipped in the package)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from digitnet import atomic
from digitnet.commands.common import console
from digitnet.models import LineNet
from digitnet.runs.config import PRECISIONS
from digitnet.training.line_reader import LineConfig, fit_lines

TUNABLE = ("epochs", "batch_size", "lr", "ema", "limit", "validation", "seed", "threads", "precision",
           "test_numbers", "frame", "typeset", "crisp")


def register(sub) -> None:
    p = sub.add_parser("train-lines", help="train the reader of whole numbers (digitnet read)",
                       description="Train a line reader with CTC loss on lines composed from MNIST "
                                   "training digits; 'digitnet read --run OUT' then uses it.")
    p.add_argument("--out", type=Path, required=True, help="the folder to write it into")
    defaults = LineConfig()
    for name in TUNABLE:
        default = getattr(defaults, name)
        p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default,
                       choices={"precision": PRECISIONS, "frame": LineNet.FRAMES}.get(name),
                       help=f"(default {default})")
    p.add_argument("--data-dir", default=None,
                   help="folder with the IDX files (default: $DIGITNET_DATA, system, cache)")
    p.set_defaults(run=run)


def run(args) -> int:
    config = dataclasses.replace(LineConfig(), **{name: getattr(args, name) for name in TUNABLE})
    atomic.check_folder(args.out)  # before the data is loaded, not after
    metrics = fit_lines(config, args.out, data_dir=args.data_dir,
                        report=lambda line: print(line, file=sys.stderr, flush=True))
    console().print(f"validation lines read exactly {metrics['val_exact']:.4f}, per digit "
                    f"{metrics['val_per_digit']:.4f} ({metrics['train_seconds']:.0f} s training, "
                    f"{metrics['precision']})")
    console().print(f"line reader saved in {args.out}", markup=False)
    return 0
