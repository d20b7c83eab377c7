"""The review's contact sheet: every pending correction as a tile, to judge at a glance.

Each tile shows the picture kept (the ink as sent, shrunk), the 28x28 images the model saw,
and a caption: the id, the label the person gave, what the model answered, and the client's
id, so that one source's corrections can be told apart and accepted or rejected together.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from digitnet import atomic
from digitnet.corrections.store import Pending
from digitnet.errors import DigitnetError

TILE = 160  # px, the square a correction's picture is fitted into
CAPTION = 34  # px of text under it
COLUMNS = 8
DIGITS_SHOWN = 4  # a number's first digits, as the model saw them


def fitted(picture: np.ndarray, side: int) -> np.ndarray:
    """uint8 (h, w) scaled to fit ``side`` x ``side``, centred on white."""
    scale = side / max(picture.shape)
    size = (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale)))
    small = cv2.resize(picture, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
    out = np.full((side, side), 255, np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def tile(item: Pending) -> np.ndarray:
    """uint8 (TILE + CAPTION, TILE): one correction."""
    picture = cv2.imdecode(np.frombuffer(item.image, np.uint8), cv2.IMREAD_GRAYSCALE)
    out = np.full((TILE + CAPTION, TILE), 255, np.uint8)
    out[:TILE] = fitted(picture if picture is not None else np.full((1, 1), 255, np.uint8), TILE)
    side = TILE // DIGITS_SHOWN
    for i, digit in enumerate(item.digits[:DIGITS_SHOWN]):  # what the model saw, in a strip
        out[TILE - side : TILE, i * side : (i + 1) * side] = cv2.resize(digit, (side, side),
                                                                        interpolation=cv2.INTER_NEAREST)
    s = item.summary
    lines = (f"#{s.id} label {s.label[:10]}", f"said {s.answer[:12]} {s.client or '-'}"[:28])
    for row, text in enumerate(lines):
        cv2.putText(out, text, (3, TILE + 14 + 15 * row), cv2.FONT_HERSHEY_PLAIN, 0.9, 0, 1, cv2.LINE_AA)
    return out


def write_sheet(pending: list[Pending], path: Path) -> Path:
    """The tiles in rows of ``COLUMNS``, as a PNG at ``path`` (written atomically)."""
    if not pending:
        raise DigitnetError("nothing pending to put on a contact sheet")
    tiles = [tile(p) for p in pending]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % COLUMNS)
    rows = [np.hstack([np.pad(t, 2, constant_values=200) for t in tiles[i : i + COLUMNS]])
            for i in range(0, len(tiles), COLUMNS)]
    ok, data = cv2.imencode(".png", np.vstack(rows))
    if not ok:
        raise DigitnetError("could not encode the contact sheet")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, data.tobytes())
    return path
