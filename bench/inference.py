"""Inference speed of each backend: images/s at batch 1,000 and single-image latency (p50, p99).

    python bench/inference.py RUN_DIR [--repeats 3] [--calls 200] [--json FILE]

RUN_DIR needs a model.onnx and model-int8.onnx (``digitnet export --run RUN_DIR``) for the onnx
rows. Prints JSON with the
medians of ``--repeats`` repetitions; timings depend on what else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import onnxruntime
import torch

from digitnet import atomic
from digitnet.benchmarks import timing
from digitnet.datasets import load
from digitnet.inference.predictor import Predictor

VARIANTS = {"torch fp32": ("torch", "fp32"), "torch bf16": ("torch", "bf16"), "onnx": ("onnx", "fp32"),
            "onnx int8": ("onnx-int8", "fp32")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200, help="single-image calls per repeat")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)

    ds = load("mnist", args.data_dir)
    results = {}
    for name, (backend, precision) in VARIANTS.items():
        predictor = Predictor.from_run(args.run_dir, backend, precision=precision)
        results[name] = timing.measure(predictor.probabilities, ds.x_test, args.batch, args.calls,
                                       args.repeats)
    report = {
        "results": results, "repeats": args.repeats, "calls": args.calls,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_average": os.getloadavg(), "torch_threads": torch.get_num_threads()},
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                     "python": platform.python_version()},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        atomic.write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
