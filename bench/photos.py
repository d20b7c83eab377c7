"""Benchmark: accuracy on MNIST test digits rendered as phone photos (``digitnet.vision.render``).

    python bench/photos.py [RUN_DIR] [--photos 1000] [--seed 0]

Without RUN_DIR it first trains the tutorial model for 3 epochs on the full training set.
Each photo is written to a file and read back through exactly the path of ``digitnet
predict`` (``predicting.predict_files``). Whole numbers (``digitnet read``) are measured by
``bench/read_numbers.py``. Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from digitnet.datasets import load
from digitnet.inference.files import predict_files
from digitnet.inference.predictor import Predictor
from digitnet.training.config import TrainConfig
from digitnet.training.run import fit
from digitnet.vision import render


def write_photo(folder: Path, i: int, image: np.ndarray, info: dict) -> Path:
    """PNG, or JPEG when the renderer compressed it (as the phone would have saved it)."""
    ext = ".jpg" if "jpeg" in info else ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else []
    path = folder / f"photo-{i:05d}{ext}"
    ok, data = cv2.imencode(ext, image, params)
    path.write_bytes(data.tobytes())
    return path


def bench_photos(predictor: Predictor, ds, n: int, rng: np.random.Generator, folder: Path) -> dict:
    idx = rng.choice(len(ds.x_test), n, replace=False)
    paths, infos = [], []
    for k, i in enumerate(idx):
        image, info = render.render_photo(ds.x_test[i], rng)
        paths.append(write_photo(folder, k, image, info))
        infos.append(info)
    start = time.perf_counter()
    predictions, errors = predict_files(predictor, paths, top_k=1)
    seconds = time.perf_counter() - start
    by_path = {p.path: p.digit for p in predictions}
    correct = np.array([by_path.get(str(p), -1) == ds.y_test[i] for p, i in zip(paths, idx, strict=True)])
    kinds: dict[str, list[bool]] = defaultdict(list)
    for ok, info in zip(correct, infos, strict=True):
        applied = [e for e in render.EFFECTS if e in info] or ["none"]
        for e in applied:
            kinds[e].append(bool(ok))
        h, w = info["canvas"]
        kinds["small digit (<50 px)" if info["box"][2] * 20 / 28 < 50 else "large digit"].append(bool(ok))
    per_kind = sorted(((k, float(np.mean(v)), len(v)) for k, v in kinds.items()), key=lambda t: t[1])
    clean = predictor.probabilities(ds.x_test[idx]).argmax(1) == ds.y_test[idx]
    return {"photos": n, "photo_accuracy": float(correct.mean()), "clean_accuracy_same_digits":
            float(clean.mean()), "failed_files": len(errors), "predict_seconds": round(seconds, 2),
            "per_kind": [{"kind": k, "accuracy": a, "images": c} for k, a, c in per_kind]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a trained run (default: train one)")
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3, help="epochs when training (3)")
    args = parser.parse_args()
    ds = load("mnist")
    with tempfile.TemporaryDirectory(prefix="digitnet-bench-") as tmp:
        folder = Path(tmp)
        run_dir = args.run_dir
        if run_dir is None:
            run_dir = folder / "run"
            print(f"training {args.epochs} epochs into {run_dir} ...", file=sys.stderr)
            fit(TrainConfig(epochs=args.epochs), run_dir, dataset=ds)
        predictor = Predictor.from_run(run_dir)
        rng = np.random.default_rng(args.seed)
        result = {"run_dir": str(args.run_dir or "trained"), "seed": args.seed,
                  **bench_photos(predictor, ds, args.photos, rng, folder)}
    print(f"photos: {result['photo_accuracy']:.4f} on {result['photos']} "
          f"(same digits clean: {result['clean_accuracy_same_digits']:.4f})")
    for row in result["per_kind"]:
        print(f"  {row['kind']:<22} {row['accuracy']:.4f}  ({row['images']} images)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
