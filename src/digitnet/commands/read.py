"""``digitnet read``: the number written on one line of an image, digit by digit."""

from __future__ import annotations

import json
from pathlib import Path

from digitnet.commands.common import add_backend_option
from digitnet.inference.files import with_path
from digitnet.inference.predictor import Predictor
from digitnet.vision import imaging
from digitnet.vision.numbers import read_number


def register(sub) -> None:
    p = sub.add_parser("read", help="read a number written on one line of an image",
                       description="Read a handwritten number (digits side by side on one line) "
                                   "from an image file.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a trained run directory")
    p.add_argument("image", type=Path, metavar="IMAGE", help="an image file of the number")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_backend_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    predictor = Predictor.from_run(args.run_dir, backend=args.backend)
    image = imaging.load(args.image)
    try:
        with imaging.opencv_errors(str(args.image)):
            reading = read_number(image, predictor)
    except imaging.ImageError as e:
        raise imaging.ImageError(with_path(str(args.image), e), e.kind) from e
    if args.json:
        print(json.dumps({"path": str(args.image), "text": reading.text,
                          "digits": [d.to_dict() for d in reading.digits]}))
        return 0
    print(reading.text)
    for d in reading.digits:
        x, y, w, h = d.box
        print(f"  {d.digit}  probability {d.probability:.3f}  at x={x} y={y} w={w} h={h}")
    return 0
