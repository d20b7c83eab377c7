"""Benchmark: accuracy on MNIST test digits rendered as phone photos (``digitnet.vision.render``).

    python bench/photos.py [RUN_DIR] [--photos 1000] [--seed 0]
    python bench/photos.py --where [RUN_DIR] [--digits 3000] [--split train|test]

``--where`` measures where a photo loses points against the digit itself, with the bundled
reader by default: the same MNIST digits read straight, through the preprocessing without a
photo, as the pen left them (size, pen, rotation, no paper or camera), and photographed with one
effect at a time and with all of them (``render.HARSH``: rotation to 15 degrees, a thicker or
thinner pen, blur, noise, texture, uneven light, JPEG quality 55). Each digit gets the same
random choices in every row, so a row differs from the one above only by what it names. Tune on
``--split train``; ``--split test`` is for the report.

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
from digitnet.runs.config import TrainConfig
from digitnet.training.run import fit
from digitnet.vision import imaging, render


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


def _only(*names: str) -> dict[str, float]:
    return {**dict.fromkeys(render.EFFECTS, 0.0), **dict.fromkeys(names, 1.0)}


# (row name, effects, JPEG quality): each photo row of ``where_lost``
PHOTO_ROWS = [
    ("photo: paper only", _only(), None),
    ("photo: rotation to 15 degrees", _only("rotation"), None),
    ("photo: thicker pen", _only("thick"), None),
    ("photo: thinner pen", {**_only(), "thin": 1.0}, None),
    ("photo: blur", _only("blur"), None),
    ("photo: noise", _only("noise"), None),
    ("photo: tint, texture, uneven light", _only("tint", "texture", "uneven_light"), None),
    ("photo: JPEG quality 55", _only("jpeg"), render.HARSH_JPEG_QUALITY),
    ("photo: all of them (harsh)", render.HARSH, render.HARSH_JPEG_QUALITY),
]


def _read(predictor: Predictor, images: list[np.ndarray]) -> np.ndarray:
    """Images (any size) -> the reader's answers (class index; -1 where preprocessing refused)."""
    digits, ok = [], []
    for image in images:
        try:
            digits.append(imaging.to_mnist(image))
            ok.append(True)
        except imaging.ImageError:
            digits.append(np.zeros((28, 28), np.uint8))
            ok.append(False)
    answers = predictor.probabilities(np.stack(digits)).argmax(1)
    return np.where(ok, answers, -1)


def where_lost(predictor: Predictor, x: np.ndarray, y: np.ndarray, seed: int) -> list[dict]:
    """Accuracy of each row (see the module's docstring) on the digits ``x`` (N, 28, 28)."""
    rows = [("straight (the 28x28 itself)", predictor.probabilities(x).argmax(1))]
    big = [255 - cv2.resize(d, (224, 224), interpolation=cv2.INTER_CUBIC) for d in x]
    rows.append(("preprocessed, no photo (8x, dark on white)", _read(predictor, big)))
    pen = [render.render_ink(d, np.random.default_rng([seed, i]), render.HARSH)[0] for i, d in enumerate(x)]
    rows.append(("as the harsh pen left it (no paper, camera)",
                 _read(predictor, [(255 - 255 * c).round().astype(np.uint8) for c in pen])))
    for name, effects, quality in PHOTO_ROWS:
        photos = [render.render_photo(d, np.random.default_rng([seed, i]), effects, quality)[0]
                  for i, d in enumerate(x)]
        rows.append((name, _read(predictor, photos)))
    return [{"row": name, "accuracy": float(np.mean(answers == y)), "wrong": int(np.sum(answers != y)),
             "refused": int(np.sum(answers == -1))} for name, answers in rows]


def main_where(args: argparse.Namespace) -> int:
    from digitnet.inference import bundled

    ds = load("mnist")
    x, y = (ds.x_train, ds.y_train) if args.split == "train" else (ds.x_test, ds.y_test)
    idx = np.random.default_rng(args.seed).choice(len(x), min(args.digits, len(x)), replace=False)
    predictor = Predictor.from_run(bundled.model_dir(args.run_dir))
    start = time.perf_counter()
    rows = where_lost(predictor, x[idx], y[idx], args.seed)
    print(f"MNIST {args.split} digits: {len(idx)}, seed {args.seed}, {time.perf_counter() - start:.0f} s")
    print(f"| {'row':<44} | accuracy | wrong | refused |")
    print(f"|{'-' * 46}|----------|-------|---------|")
    for r in rows:
        print(f"| {r['row']:<44} | {100 * r['accuracy']:7.2f}% | {r['wrong']:5d} | {r['refused']:7d} |")
    print(json.dumps({"split": args.split, "digits": len(idx), "seed": args.seed,
                      "preprocess": imaging.PREPROCESS_VERSION, "rows": rows}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a trained run (default: train one)")
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3, help="epochs when training (3)")
    parser.add_argument("--where", action="store_true", help="where photos lose points (bundled reader)")
    parser.add_argument("--digits", type=int, default=3000, help="digits for --where (3000)")
    parser.add_argument("--split", choices=("train", "test"), default="train", help="for --where")
    args = parser.parse_args()
    if args.where:
        return main_where(args)
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
