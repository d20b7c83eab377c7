"""Benchmark: reading whole numbers as ``digitnet read`` does, by spacing, beside an earlier reader.

    python bench/read_numbers.py [RUN_DIR] [--reader DIR] [--numbers 300] [--seed 0]
                                 [--baseline REF] [--json FILE]

Numbers of 2-7 MNIST *test* digits, a third in each spacing of ``render.SPACINGS`` (clear,
tight, touching or overlapping by up to 15% of a digit's width), rendered as phone photos
(``render.render_number``) and stored as PNG. Each is read from its PNG bytes (decode, then
``read_number`` with the line reader: ``--reader``, else the package's), and timed per number.
With RUN_DIR (a digit classifier run) the baseline is read too: ``vision/numbers.py`` as it
was in git commit REF (by default the last reader that cut the ink into pieces before
classifying each with RUN_DIR's model), on the same images in the same process, so both rows
share the machine's load. That code was written for a 10-class model: it is handed a 10-class
view of RUN_DIR's model (``DigitsOnly``: the digit classes' probabilities, renormalised, which is
the softmax a model without "not a digit" would give from the same logits), so a piece the
11-class model calls "not a digit" is read as its most likely digit, as the old code read it,
and never as the text "10".

Exact: the whole number right. Per digit: 1 - edit distance / length. Prints a table, then one
JSON line with every figure; timings depend on what else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from digitnet import atomic
from digitnet.benchmarks.runner import cpu_model
from digitnet.datasets import load
from digitnet.errors import DigitnetError
from digitnet.inference.predictor import Predictor
from digitnet.runs.line_reading import LineReader
from digitnet.training import number_figures
from digitnet.training.line_reader import edit_distance
from digitnet.vision import imaging, numbers, render

CUTTING_READER = "7f5cfa3"  # the last vision/numbers.py that cut the ink first
LENGTHS = number_figures.LENGTHS  # digits per number, inclusive


def compose(ds, n: int, rng: np.random.Generator) -> list[tuple[str, str, bytes]]:
    """(spacing, true text, PNG bytes) of ``n`` numbers, the spacings taking turns."""
    return [(kind, truth, cv2.imencode(".png", image)[1].tobytes())
            for kind, truth, image in number_figures.compose(ds.x_test, ds.y_test, n, rng)]


def baseline_module(ref: str) -> types.ModuleType:
    """``digitnet.vision.numbers`` as it was in git commit ``ref``, imported under another name."""
    source = subprocess.run(["git", "show", f"{ref}:src/digitnet/vision/numbers.py"], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).parent).stdout
    module = types.ModuleType(f"numbers_{ref}")
    sys.modules[module.__name__] = module  # dataclasses look their module up while decorating
    exec(compile(source, f"{ref}:numbers.py", "exec"), module.__dict__)
    return module


class DigitsOnly:
    """A 10-class view of a classifier: ``probabilities`` over the ten digits only, renormalised
    (equal to a softmax over the digit logits alone), so argmax is the most likely digit."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        probs = self.predictor.probabilities(images)[:, :10]  # (N, 10)
        return probs / probs.sum(axis=1, keepdims=True)


def measure(read: Callable[[np.ndarray], str], cases: list[tuple[str, str, bytes]]) -> dict:
    """Exact and per-digit accuracy by spacing and overall; per number of each length, the
    median wall-clock ms and the median CPU ms of this process (which other processes on a
    busy machine inflate less)."""
    rows: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    ms_by_length: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for kind, truth, png in cases:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            text = read(imaging.decode(png, "number", gray=True))  # as digitnet read decodes
        except DigitnetError:  # refused or unreadable: counts as wrong
            text = ""
        ms_by_length[len(truth)].append((1000 * (time.perf_counter() - start),
                                         1000 * (time.process_time() - cpu)))
        score = (text == truth, max(0.0, 1 - edit_distance(list(text), list(truth)) / len(truth)))
        rows[kind].append(score)
        rows["all"].append(score)
    return {"kinds": {k: {"numbers": len(rows[k]), "exact": float(np.mean([e for e, _ in rows[k]])),
                          "per_digit": float(np.mean([d for _, d in rows[k]]))}
                      for k in [*render.SPACINGS, "all"] if rows[k]},
            "ms_by_length": {n: {"wall": float(np.median([w for w, _ in v])),
                                 "cpu": float(np.median([c for _, c in v]))}
                             for n, v in sorted(ms_by_length.items())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?",
                        help="a digit classifier run, for the baseline (default: no baseline)")
    parser.add_argument("--reader", type=Path, help="a line reader (default: the package's)")
    parser.add_argument("--numbers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="auto", help="the baseline classifier's backend (auto)")
    parser.add_argument("--baseline", default=CUTTING_READER,
                        help=f"git commit of the reader to compare with ({CUTTING_READER})")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    reader = LineReader.load(args.reader)
    cases = compose(load("mnist"), args.numbers, np.random.default_rng(args.seed))
    readers = {"whole line": lambda image: numbers.read_number(image, reader).text}
    if args.run_dir:
        predictor = DigitsOnly(Predictor.from_run(args.run_dir, backend=args.backend))
        old = baseline_module(args.baseline)
        readers[f"cut first ({args.baseline})"] = lambda image: old.read_number(image, predictor).text
    load_before = os.getloadavg()[0]
    result = {"line_reader": reader.source, "baseline_run": str(args.run_dir), "seed": args.seed,
              "numbers": args.numbers, "cpu": cpu_model(), "cores": os.cpu_count(),
              "readers": {name: measure(read, cases) for name, read in readers.items()}}
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # before, after
    print(f"{len(cases)} numbers of {LENGTHS[0]}-{LENGTHS[1]} MNIST test digits; line reader "
          f"{reader.source}, baseline classifier {args.run_dir}; {result['cpu']}, "
          f"{result['cores']} cores, load average {result['load_average']} (before, after)")
    print(f"{'reader':<24} {'spacing':<10} {'numbers':>7} {'exact':>7} {'per digit':>9}")
    for name, r in result["readers"].items():
        for kind, row in r["kinds"].items():
            print(f"{name:<24} {kind:<10} {row['numbers']:>7} {row['exact']:>7.3f} {row['per_digit']:>9.3f}")
        times = ", ".join(f"{n}: {ms['wall']:.1f} ({ms['cpu']:.1f})" for n, ms in r["ms_by_length"].items())
        print(f"{name:<24} ms per number by digits, median wall (cpu): {times}")
    if args.json:
        atomic.write_json(args.json, result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
