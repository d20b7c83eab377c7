"""Options and output helpers shared by several commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from digitnet.datasets import SPECS


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="mnist", choices=sorted(SPECS),
                        help="which dataset (default: mnist)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the IDX files (default: $DIGITNET_DATA, system, cache)")


def add_run_option(parser: argparse.ArgumentParser, extra: str = "") -> None:
    """--run DIR: how every command picks a trained model (dest ``run_dir``; ``run`` is the
    command's function)."""
    parser.add_argument("--run", dest="run_dir", type=Path, metavar="DIR",
                        help=f"a trained run directory (default: the latest under runs/{extra})")


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """--run DIR for the commands that use a model (predict, read, serve): without it they use
    the reader bundled with digitnet (dest ``run_dir``; resolve with ``bundled.model_dir``)."""
    parser.add_argument("--run", dest="run_dir", metavar="DIR",
                        help="a trained run directory, or 'latest' for the newest under runs/ "
                             "(default: the reader bundled with digitnet)")


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    from digitnet.inference.predictor import BACKENDS, DEFAULT_BACKEND

    parser.add_argument(
        "--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
        help=f"runtime executing the network (default {DEFAULT_BACKEND}: onnxruntime when the "
             "run has a current model.onnx from 'digitnet export', else torch; onnx-int8: "
             "its int8 copy, about twice as fast, the same answers)")


def console() -> Console:
    """Where commands print results: stdout, with colour only on a terminal. Lines are not
    wrapped: a path or an address stays whole, to copy, however narrow the terminal (or a
    pipe, which rich takes as 80 columns) is."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)
