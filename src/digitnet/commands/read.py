"""``digitnet read``: the number written on one line of each image, read whole."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from digitnet.inference.files import with_path
from digitnet.runs.line_reading import LineReader
from digitnet.vision import imaging
from digitnet.vision.numbers import NumberReading, in_original, number_from_bytes


def register(sub) -> None:
    p = sub.add_parser("read", help="read a number written on one line of an image",
                       description="Read a handwritten number (digits side by side on one line, "
                                   "touching or not) from each image file.")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                   help="image files, one number each")
    p.add_argument("--run", dest="run_dir", type=Path, metavar="DIR",
                   help="a line reader trained with 'digitnet train-lines' (default: the one in "
                        "the package)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(run=run)


def read_file(path: Path, reader: LineReader) -> NumberReading:
    try:
        reading, _, factor = number_from_bytes(imaging.read_file(path), str(path), reader)
        return in_original(reading, factor)
    except imaging.ImageError as e:
        raise imaging.ImageError(with_path(str(path), e), e.kind) from e


def show(path: Path, reading: NumberReading, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"path": str(path), "text": reading.text, "verdict": reading.verdict,
                          "probability": reading.probability,
                          "digits": [d.to_dict() for d in reading.digits]}))
        return
    print(f"{path}: {reading.verdict}  (probability {reading.probability:.3f})")
    for d in reading.digits:
        x, y, w, h = d.box
        doubt = f"  or {d.runner_up}?" if d.unsure else ""
        print(f"  {d.digit}  probability {d.probability:.3f}{doubt}  at x={x} y={y} w={w} h={h}")


def run(args) -> int:
    """Reads every file; a bad one is one line on stderr and exit code 2, the others still read."""
    reader = LineReader.load(args.run_dir)
    failed = False
    for path in args.images:
        try:
            reading = read_file(path, reader)
        except imaging.ImageError as e:
            print(f"digitnet: error: {e}", file=sys.stderr)
            failed = True
            continue
        show(path, reading, args.json)
    return 2 if failed else 0
