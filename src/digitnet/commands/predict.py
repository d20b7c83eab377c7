"""``digitnet predict``: the digit in each image file, with its probability and the runners-up."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from digitnet.commands.common import add_backend_option, add_model_option
from digitnet.inference import bundled
from digitnet.inference.files import predict_files
from digitnet.inference.predictor import Predictor


def top_k(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10, not {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser("predict", help="read the digit in each of your own images",
                       description="Read one handwritten digit per image file (PNG, JPEG, BMP, TIFF, "
                                   "WebP; photos, scans or drawings, any size, dark on light or "
                                   "light on dark).")
    add_model_option(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, one digit each")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--top-k", type=top_k, default=3, metavar="K",
                   help="how many most likely digits to list (default 3)")
    p.add_argument("--debug-dir", type=Path, metavar="DIR",
                   help="write the 28x28 image the model saw for each input here")
    add_backend_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    predictor = Predictor.from_run(bundled.model_dir(args.run_dir), backend=args.backend)
    predictions, errors = predict_files(predictor, args.images, args.top_k, args.debug_dir)
    for p in predictions:
        if args.json:
            print(json.dumps(p.to_dict()))
            continue
        others = ", ".join(f"{predictor.classes[c]} {q:.3f}" for c, q in p.top_k)
        print(f"{p.path}: {p.answer.text} (probability {p.answer.probability:.3f}; "
              f"top {len(p.top_k)}: {others})")
        if p.number > 1:
            print(f"  this looks like a number of {p.number} digits, not one digit: "
                  f"read it with 'digitnet read {p.path}'")
    for e in errors:
        print(f"digitnet: error: {e.message}", file=sys.stderr)
    if args.debug_dir is not None and predictions:
        print(f"wrote {len(predictions)} debug images to {args.debug_dir}", file=sys.stderr)
    return 2 if errors else 0
