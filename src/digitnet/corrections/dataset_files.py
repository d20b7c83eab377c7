"""Corrections as files other tools read: the four MNIST IDX files, or a folder of PNGs per
label.

The IDX files carry MNIST's names, so code that loads MNIST from a folder loads them too
(``digitnet.datasets.idx``, or any IDX reader): the training files hold the corrections that
fine-tuning learns from, the test files the ones it holds out (every fifth, by id). Labels are
0-9, and 10 for "not a digit".
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2

from digitnet import atomic
from digitnet.corrections.store import HOLDOUT_EVERY, Labelled
from digitnet.datasets import idx
from digitnet.datasets.registry import FILES
from digitnet.errors import DigitnetError
from digitnet.runs.config import NOT_A_DIGIT

FORMATS = ("idx", "png")


def label_name(label: int) -> str:
    """A label's folder name: "0".."9", or "not-a-digit"."""
    return "not-a-digit" if label == NOT_A_DIGIT else str(label)


def idx_files(data: Labelled, every: int = HOLDOUT_EVERY) -> dict[str, bytes]:
    """{MNIST file name: IDX bytes}: training images and labels, then the held-out ones."""
    train, test = data.split(every)
    arrays = {"x_train": train.x, "y_train": train.y, "x_test": test.x, "y_test": test.y}
    return {stem: idx.encode(arrays[role]) for role, stem, _ in FILES}


def png_files(data: Labelled) -> dict[str, bytes]:
    """{"<label>/<correction id>-<n>.png": PNG bytes}, numbered within each correction."""
    files, seen = {}, {}
    for image, label, ident in zip(data.x, data.y, data.ids, strict=True):
        n = seen[ident] = seen.get(ident, -1) + 1
        ok, png = cv2.imencode(".png", image)
        if not ok:  # cannot happen for uint8 (28, 28), but never write an empty file
            raise DigitnetError(f"could not encode correction {ident} as PNG")
        files[f"{label_name(int(label))}/{ident}-{n}.png"] = png.tobytes()
    return files


def files(data: Labelled, fmt: str) -> dict[str, bytes]:
    if fmt not in FORMATS:
        raise DigitnetError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return idx_files(data) if fmt == "idx" else png_files(data)


def write(data: Labelled, fmt: str, out: Path) -> list[Path]:
    """Write the export into ``out``, which must be new or empty (so nothing deleted from the
    database lingers from an earlier export); each file is written atomically."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DigitnetError(f"{out}: exists and is not an empty folder; choose a new one")
    written = []
    for name, content in files(data, fmt).items():
        atomic.write_bytes(out / name, content)
        written.append(out / name)
    return written


def zipped(data: Labelled, fmt: str) -> bytes:
    """The export as one zip archive, for the HTTP API."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files(data, fmt).items():
            archive.writestr(name, content)
    return buffer.getvalue()
