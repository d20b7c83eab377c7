"""Options and output helpers shared by several commands."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from digitnet.datasets import SPECS


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="mnist", choices=sorted(SPECS),
                        help="which dataset (default: mnist)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the IDX files (default: $DIGITNET_DATA, system, cache)")


def console() -> Console:
    """Where commands print results: stdout, with colour only on a terminal."""
    return Console(file=sys.stdout, highlight=False)
