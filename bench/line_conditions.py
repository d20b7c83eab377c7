"""Benchmark: where a line reader fails, on numbers written with VALIDATION digits (the last
training digits, which ``digitnet train-lines`` holds out), one writing condition at a time.

    python bench/line_conditions.py [--lines A] [--compare B] [--numbers 150] [--seed 7]
                                    [--conditions C ...] [--json FILE]

A and B are line readers: a folder, "bundled" (the package's) or "git:REF" (the package's as
committed at REF). Each condition writes ``--numbers`` numbers of 2-7 digits (8-12 for "long")
in each spacing of ``render.SPACINGS``, photographs them (``render.render_number``) and reads
them as ``digitnet read`` does. The conditions change the digits before they are written:

  plain        MNIST's writers as they wrote            redrawn      ``strokes.restyle``'s mix
  hairline     redrawn with a 1-pixel pen               marker       redrawn with a ~4-pixel pen
  nib          redrawn with a broad nib                 condensed    half to two thirds as wide
  wide         1.4-1.6 times as wide                    faint        ink at 25-45% of its darkness
  slant        sheared by 0.3-0.45 either way           styles       half the digits 1, 4 or 7,
  long         8-12 plain digits                                     flagged, barred and open

Never MNIST test digits and never the reserved independent sets: this is the data choices
are made on. Prints exact-number rates by condition and spacing, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from reader import resolve

from digitnet import atomic
from digitnet.benchmarks.runner import cpu_model
from digitnet.datasets import load
from digitnet.preprocess import input_tensor
from digitnet.runs.line_reading import LineReader
from digitnet.training import number_figures
from digitnet.training.strokes import Restyle, restyle
from digitnet.vision import render

VALIDATION = 5000  # LineConfig.validation: the last training digits, never trained on
ONLY = {"p_redraw": 1.0, "p_nib": 0.0, "p_reshape": 0.0, "p_flag": 0.0, "p_bar": 0.0, "p_open": 0.0}
STYLES: dict[str, Restyle | None] = {
    "plain": None,
    "redrawn": Restyle(p_redraw=1.0),
    "hairline": Restyle(**ONLY, pen=(0.5, 0.6)),
    "marker": Restyle(**ONLY, pen=(1.8, 2.2)),
    "nib": Restyle(**{**ONLY, "p_nib": 1.0}),
    "condensed": Restyle(**{**ONLY, "p_reshape": 1.0}, aspect=(0.5, 0.67)),
    "wide": Restyle(**{**ONLY, "p_reshape": 1.0}, aspect=(1.4, 1.6)),
    "faint": None,
    "slant": None,
    "styles": Restyle(**{**ONLY, "p_flag": 1.0, "p_bar": 1.0, "p_open": 1.0}),
    "long": None,
}


def _slanted(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s = float(rng.uniform(0.3, 0.45)) * (1 if rng.random() < 0.5 else -1)
    shear = np.float32([[1, s, -s * 14], [0, 1, 0]])
    return cv2.warpAffine(d, shear, (28, 28), flags=cv2.INTER_LINEAR)


def digits_for(condition: str, x: np.ndarray, y: np.ndarray, idx: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """uint8 (k, 28, 28): the digits ``x[idx]`` changed as ``condition`` says."""
    style = STYLES[condition]
    if style is not None:
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        out = restyle(input_tensor(x[idx]), torch.from_numpy(y[idx]).long(), style, g)
        return (out[:, 0] * 255).round().to(torch.uint8).numpy()
    if condition == "faint":
        return (x[idx] * rng.uniform(0.25, 0.45)).astype(np.uint8)
    if condition == "slant":
        return np.stack([_slanted(d, rng) for d in x[idx]])
    return x[idx]


def numbers(condition: str, x: np.ndarray, y: np.ndarray, n: int, seed: int
            ) -> list[tuple[str, str, np.ndarray]]:
    """(spacing, truth, photo) of ``n`` numbers per spacing written in ``condition``."""
    rng = np.random.default_rng([seed, list(STYLES).index(condition)])
    lo, hi = (8, 12) if condition == "long" else number_figures.LENGTHS
    favoured = np.flatnonzero(np.isin(y, [1, 4, 7]))
    cases = []
    for k in range(n * len(render.SPACINGS)):
        length = int(rng.integers(lo, hi + 1))
        idx = rng.choice(len(x), length, replace=False)
        if condition == "styles":  # half the digits a 1, 4 or 7, so every number has a few
            some = rng.random(length) < 0.5
            idx[some] = rng.choice(favoured, int(some.sum()))
        spacing = list(render.SPACINGS)[k % len(render.SPACINGS)]
        image = render.render_number(list(digits_for(condition, x, y, idx, rng)), rng, spacing=spacing)
        cases.append((spacing, "".join(str(int(d)) for d in y[idx]), image))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default="bundled", help="line reader A: a folder, 'bundled' or 'git:REF'")
    parser.add_argument("--compare", default=None, help="line reader B, measured on the same numbers")
    parser.add_argument("--numbers", type=int, default=150, help="numbers per condition and spacing")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--conditions", nargs="+", choices=list(STYLES), default=list(STYLES),
                        help="measure only these (default: all)")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    ds = load("mnist")
    x, y = ds.x_train[-VALIDATION:], ds.y_train[-VALIDATION:]
    with tempfile.TemporaryDirectory() as tmp:
        names = {"A": args.lines, **({"B": args.compare} if args.compare else {})}
        readers = {m: LineReader.load(resolve(name, "lines", Path(tmp) / m)) for m, name in names.items()}
    results: dict[str, dict] = {m: {} for m in readers}
    load_before = os.getloadavg()[0]
    for condition in args.conditions:
        cases = numbers(condition, x, y, args.numbers, args.seed)
        for m, reader in readers.items():
            readings = number_figures.read_all(reader, cases)
            results[m][condition] = number_figures.summarise(readings)["by_spacing"]
    columns = [*render.SPACINGS, "all"]
    header = f"{'condition':<11}" + "".join(f"{m + ' ' + k:>13}" for k in columns for m in readers)
    print(f"validation digits (last {VALIDATION} of MNIST training); {names}; {cpu_model()}, "
          f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    print(header)
    for condition in args.conditions:
        print(f"{condition:<11}" + "".join(f"{results[m][condition][k]['exact']:>13.3f}"
                                           for k in columns for m in readers))
    out = {"readers": names, "numbers": args.numbers, "seed": args.seed, "cpu": cpu_model(),
           "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
           "styles": {k: dataclasses.asdict(v) if v else None for k, v in STYLES.items()}, "results": results}
    if args.json:
        atomic.write_json(args.json, out)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
