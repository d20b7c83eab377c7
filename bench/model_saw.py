"""Draw the "what the model saw" figure: rendered photos next to the 28x28 images they become.

    python bench/model_saw.py RUN_DIR [--out docs/images/what-the-model-saw.png] [--seed 4]

Each pair is one MNIST test digit rendered as a photo (``digitnet.vision.render``) and the output of
``imaging.to_mnist`` on it, labelled with the model's answer and probability.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from digitnet import atomic
from digitnet.datasets import load
from digitnet.inference.predictor import Predictor
from digitnet.vision import imaging, render

TILE = 168  # px per picture in the figure
LABEL = 26  # px of caption under each pair


def letterbox(image: np.ndarray, side: int) -> np.ndarray:
    """BGR image scaled to fit side x side on a mid-grey square."""
    h, w = image.shape[:2]
    s = side / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.full((side, side, 3), 128, np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def pair(photo: np.ndarray, seen: np.ndarray, caption: str) -> np.ndarray:
    big = cv2.resize(seen, (TILE, TILE), interpolation=cv2.INTER_NEAREST)
    row = np.hstack([letterbox(photo, TILE), np.full((TILE, 6, 3), 255, np.uint8),
                     cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)])
    label = np.full((LABEL, row.shape[1], 3), 255, np.uint8)
    cv2.putText(label, caption, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (30, 30, 30), 1, cv2.LINE_AA)
    return np.vstack([row, label])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images/what-the-model-saw.png"))
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--n", type=int, default=6, help="pairs (a multiple of 2)")
    args = parser.parse_args()
    ds = load("mnist")
    predictor = Predictor.from_run(args.run_dir)
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(ds.x_test), args.n, replace=False)
    photos = [render.render_photo(ds.x_test[i], rng)[0] for i in idx]
    seen = np.stack([imaging.to_mnist(p) for p in photos])
    probs = predictor.probabilities(seen)
    tiles = [pair(p, s, f"true {ds.y_test[i]}   model: {q.argmax()} ({q.max():.2f})")
             for p, s, q, i in zip(photos, seen, probs, idx, strict=True)]
    gap = np.full((tiles[0].shape[0], 16, 3), 255, np.uint8)
    rows = [np.hstack([tiles[k], gap, tiles[k + 1]]) for k in range(0, len(tiles), 2)]
    figure = np.vstack([np.vstack([r, np.full((10, r.shape[1], 3), 255, np.uint8)]) for r in rows])
    ok, png = cv2.imencode(".png", figure, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    atomic.write_bytes(args.out, png.tobytes())
    print(args.out)


if __name__ == "__main__":
    main()
