"""Benchmark: how a model reads people's digits, and what it says of things that are not digits.

    python bench/reader.py [--reader RUN] [--baseline RUN] [--photos 2000] [--seed 20261126]

Hold-out sets, all drawn with a seed and parameters that training never uses:

  mnist        MNIST test digits as they are
  photos       MNIST test digits rendered as phone photos (``vision.render``), through ``to_mnist``
  writers      MNIST test digits distorted like other writers and pens: stronger and coarser
               warps, more slant and rotation than training, thick and thin pens, blur; then
               cropped and centred again as preprocessing would
  non-digits   Fashion-MNIST *test* images, letters and symbols in fonts kept out of training,
               scribbles, shapes and specks

For each: accuracy (the most likely digit is right), accepted (digits not called "not a digit"),
unsure ("4 or 9?"), sure accuracy (right among the digits answered without doubt), refused (of
non-digits), and the expected calibration error of the stated probability. The reader (default:
the bundled one) and a baseline (default: the tutorial model, trained here for 3 epochs) are
measured in the same run. scikit-learn's ``load_digits`` is never used here.
Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from digitnet.datasets import load
from digitnet.inference import bundled, calibration
from digitnet.inference.predictor import Predictor
from digitnet.preprocess import input_tensor
from digitnet.training import negatives
from digitnet.training.augment import WriterAugmentation, writers
from digitnet.training.config import NOT_A_DIGIT, TrainConfig
from digitnet.training.run import fit
from digitnet.vision import imaging, render

# Other writers: every image warped, harder and coarser than training's (a 4x4 elastic lattice
# against 5x5, more slant and rotation), more pen changes and blur; no noise or crops (photos').
OTHER_WRITERS = WriterAugmentation(p_writer=1.0, rotation=18.0, slant=0.45, scale=(0.8, 1.1),
                                   aspect=0.25, elastic_alpha=1.5, elastic_grid=4, p_thick=0.3,
                                   p_thin=0.3, p_lowres=0.0, p_blur=0.3, blur_sigma=(0.5, 1.4),
                                   p_noise=0.0, p_crop=0.0)
BLANK = -1  # a photo in which preprocessing found no ink: the model never saw it


def other_writers(images: np.ndarray, seed: int) -> np.ndarray:
    """uint8 (n, 28, 28) digits -> distorted, then cropped and centred again, uint8 (n, 28, 28)."""
    x = writers(input_tensor(images), OTHER_WRITERS, torch.Generator().manual_seed(seed))
    fields = [negatives.to_field(im) for im in (x[:, 0].numpy() * 255)]
    return np.stack([f if f is not None else np.zeros((28, 28), np.uint8) for f in fields])


def photos(digits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 28, 28) digits -> their photos after ``to_mnist``, and which were found blank."""
    out, blank = np.zeros_like(digits), np.zeros(len(digits), bool)
    for i, d in enumerate(digits):
        try:
            out[i] = imaging.to_mnist(render.render_photo(d, rng)[0])
        except imaging.ImageError:
            blank[i] = True
    return out, blank


def non_digits(rng: np.random.Generator) -> dict[str, np.ndarray]:
    fashion = load("fashion-mnist")
    unseen = lambda r: negatives.glyph(r, negatives.HOLDOUT_FONTS, max_rotation=30.0)  # noqa: E731
    return {
        "fashion test": negatives.fashion_fields(
            fashion.x_test[fashion.y_test != negatives.FASHION_TROUSER]),
        "letters (unseen fonts)": negatives.render("glyph", 3000, rng, unseen),
        "scribbles": negatives.render("scribble", 2000, rng),
        "shapes": negatives.render("shape", 2000, rng),
        "specks": negatives.render("specks", 500, rng),
    }


def figures(predictor: Predictor, images: np.ndarray, labels: np.ndarray,
            blank: np.ndarray | None = None) -> dict[str, float]:
    """The figures of one set; labels are digits, or NOT_A_DIGIT for a set of non-digits."""
    probs = predictor.probabilities(images)  # (n, classes), calibrated when the run was
    said = predictor.answers(probs)
    refused = np.array([a.verdict == "not_a_digit" for a in said])
    if blank is not None:
        refused |= blank
    n = len(labels)
    if labels[0] == NOT_A_DIGIT:
        # ECE over "is it a digit": the model's stated P(not a digit) against the truth
        p_not = probs[:, NOT_A_DIGIT] if probs.shape[1] > NOT_A_DIGIT else np.zeros(n)
        stated = np.stack([1 - p_not, p_not], 1).astype(np.float32)  # (n, 2)
        return {"n": n, "refused": float(refused.mean()),
                "ece": calibration.ece(torch.from_numpy(stated), torch.ones(n, dtype=torch.long))}
    digit = np.array([a.digit for a in said])
    unsure = np.array([a.verdict == "unsure" for a in said])
    sure = ~refused & ~unsure
    right = (digit == labels) & ~(blank if blank is not None else False)
    digits_probs = torch.from_numpy(probs[:, :NOT_A_DIGIT] / probs[:, :NOT_A_DIGIT].sum(1, keepdims=True))
    return {"n": n, "accuracy": float(right.mean()), "accepted": float(1 - refused.mean()),
            "unsure": float(unsure.mean()), "sure_accuracy": float(right[sure].mean()),
            "answered_right": float((right & ~refused).mean()),
            "ece": calibration.ece(torch.from_numpy(probs), torch.from_numpy(labels.astype(np.int64))),
            "ece_digits_only": calibration.ece(digits_probs, torch.from_numpy(labels.astype(np.int64)))}


def ms_per_image(predictor: Predictor, image: np.ndarray, repeats: int = 300) -> float:
    """Median milliseconds to classify one 28x28 image (the network's cost, not decoding)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.probabilities(image[None])
        times.append(time.perf_counter() - start)
    return float(np.median(times[repeats // 10 :]) * 1000)


def measure(predictor: Predictor, sets: dict[str, tuple]) -> dict[str, dict[str, float]]:
    out = {name: figures(predictor, *s) for name, s in sets.items()}
    negative = [name for name, s in sets.items() if s[1][0] == NOT_A_DIGIT]
    out["all non-digits"] = {"n": sum(out[k]["n"] for k in negative),
                             "refused": float(np.average([out[k]["refused"] for k in negative],
                                                         weights=[out[k]["n"] for k in negative]))}
    out["ms per image"] = {"ms": ms_per_image(predictor, sets["mnist"][0][0])}
    return out


def hold_out_sets(photos_n: int, seed: int) -> dict[str, tuple]:
    ds = load("mnist")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(ds.x_test), photos_n, replace=False)
    photo, blank = photos(ds.x_test[pick], rng)
    sets = {"mnist": (ds.x_test, ds.y_test),
            "photos": (photo, ds.y_test[pick], blank),
            "other writers": (other_writers(ds.x_test, seed), ds.y_test)}
    for name, images in non_digits(rng).items():
        sets[name] = (images, np.full(len(images), NOT_A_DIGIT))
    return sets


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    keys = ["accuracy", "accepted", "unsure", "sure_accuracy", "refused", "ece"]
    lines = [f"{'set':24s} {'model':9s}" + "".join(f"{k:>14s}" for k in keys)]
    models = list(results)
    for name in results[models[0]]:
        for m in models:
            r = results[m][name]
            if "ms" in r:
                lines.append(f"{name:24s} {m:9s} {r['ms']:13.2f}")
                continue
            lines.append(f"{name:24s} {m:9s}" + "".join(f"{r[k]:14.4f}" if k in r else f"{'':14s}"
                                                      for k in keys))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", default=None, help="the reader run (default: the bundled reader)")
    parser.add_argument("--baseline", type=Path, help="the run to compare with (default: train the "
                                                      "tutorial model for 3 epochs here)")
    parser.add_argument("--photos", type=int, default=2000, help="test digits rendered as photos")
    parser.add_argument("--seed", type=int, default=20261126, help="never used in training")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one image at a time is what a server does
    with tempfile.TemporaryDirectory(prefix="digitnet-bench-") as tmp:
        baseline = args.baseline
        if baseline is None:
            baseline = Path(tmp) / "tutorial"
            print("training the tutorial model (3 epochs) as the baseline ...", file=sys.stderr)
            torch.set_num_threads(torch.get_num_interop_threads())
            fit(TrainConfig(epochs=3), baseline)
            torch.set_num_threads(1)
        print("rendering the hold-out sets ...", file=sys.stderr)
        sets = hold_out_sets(args.photos, args.seed)
        models = {"reader": Predictor.from_run(bundled.model_dir(args.reader), backend="torch"),
                  "baseline": Predictor.from_run(baseline, backend="torch")}
        results = {name: measure(p, sets) for name, p in models.items()}
    print(table(results))
    print(json.dumps({"reader": str(args.reader or "bundled"),
                      "baseline": str(args.baseline or "tutorial 3 epochs"),
                      "seed": args.seed, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
