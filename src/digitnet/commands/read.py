"""``digitnet read``: the number written on one line of each image, digit by digit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from digitnet.commands.common import add_backend_option, add_model_option
from digitnet.inference import bundled
from digitnet.inference.files import with_path
from digitnet.inference.predictor import Predictor
from digitnet.vision import imaging
from digitnet.vision.numbers import NumberReading, read_number


def register(sub) -> None:
    p = sub.add_parser("read", help="read a number written on one line of an image",
                       description="Read a handwritten number (digits side by side on one line) "
                                   "from each image file.")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                   help="image files, one number each")
    add_model_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    add_backend_option(p)
    p.set_defaults(run=run)


def read_file(path: Path, predictor: Predictor) -> NumberReading:
    try:
        image = imaging.load(path)
        with imaging.opencv_errors(str(path)):
            return read_number(image, predictor)
    except imaging.ImageError as e:
        raise imaging.ImageError(with_path(str(path), e), e.kind) from e


def show(path: Path, reading: NumberReading, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"path": str(path), "text": reading.text,
                          "digits": [d.to_dict() for d in reading.digits]}))
        return
    print(f"{path}: {reading.text}")
    for d in reading.digits:
        x, y, w, h = d.box
        print(f"  {d.digit}  probability {d.probability:.3f}  at x={x} y={y} w={w} h={h}")


def run(args) -> int:
    """Reads every file; a bad one is one line on stderr and exit code 2, the others still read."""
    predictor = Predictor.from_run(bundled.model_dir(args.run_dir), backend=args.backend)
    failed = False
    for path in args.images:
        try:
            reading = read_file(path, predictor)
        except imaging.ImageError as e:
            print(f"digitnet: error: {e}", file=sys.stderr)
            failed = True
            continue
        show(path, reading, args.json)
    return 2 if failed else 0
