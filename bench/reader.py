"""Benchmark: how two readers read people's digits and numbers, and what they say of things that
are not digits, measured in the same run.

    python bench/reader.py [--reader A] [--compare B] [--lines LA] [--compare-lines LB]
                           [--backend torch] [--compare-backend torch] [--scale 1.0]
                           [--sets all|report|numbers] [--seed 20261126] [--json FILE]

A and B are digit reader runs, "bundled" (the package's reader) or "git:REF" (the package's
reader as committed at REF, e.g. git:main, to measure a new reader against the one it
replaces); LA and LB are line readers the same way (default: the package's). Each digit
reader runs on its backend (default torch; ``onnx-int8`` against ``onnx`` on the same reader
measures what quantizing costs). Every row is measured for both, on the same images:

report (from MNIST **test** digits, for the final report only; never used for choices)
  MNIST test                     the test set as it is
  harsh photos (MNIST test)      rotation to 15 degrees, thicker or thinner pen, blur, JPEG 55
  low-res (MNIST test)           UCI optdigits' preprocessing (32x32 bitmap -> 8x8 of 0-16)
  other writers (MNIST test)     distorted like other writers and pens
  non-digits                     refused, by kind: generators training never runs
                                 (``holdouts.py``: drawn doodles, stroke letters, arrows ...,
                                 Fashion-MNIST test) apart from training's own generators
                                 run with another seed (``negatives.render``: not a hold-out)
  calibration                    ECE over all hold-out digits, and over scans and photos alone
  numbers (MNIST test)           composed, photographed, read whole: exact by spacing
  printed numbers                numbers set in print typefaces training never sets (matplotlib's
                                 STIX and Computer Modern), photographed, read whole
  speed                          ms per digit (network), ms per 6-digit number (``digitnet read``)
independent checks (``independent.py``: data never trained, tuned or evaluated on)
  load_digits                    scikit-learn's digits as a user's tiny scans
  typefaces                      handwriting-style typefaces, photographed digits and numbers

For digits: top digit (the most likely digit is right), not a digit, unsure, refused (either),
answered right (right and answered as a plain digit) and ECE (expected calibration error of the
stated probability over all classes, 15 bins). ``--sets numbers`` makes the same sets as
``all`` but measures only the rows of numbers and the speed, to compare line readers quickly.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import derived_sets
import holdouts
import independent
import matplotlib
import numpy as np
import torch

from digitnet import atomic
from digitnet.benchmarks.runner import cpu_model
from digitnet.datasets import load
from digitnet.inference import bundled
from digitnet.inference.predictor import RUNTIMES, Predictor
from digitnet.runs.line_reading import BUNDLED as BUNDLED_LINES
from digitnet.runs.line_reading import WEIGHTS_FILE, LineReader
from digitnet.training import number_figures
from digitnet.training.calibrate import ece
from digitnet.vision import numbers, render

READER_FILES = ("config.json", "model.safetensors", "metrics.json")
# Images per set at --scale 1: about 3 minutes of CPU per reader (2-core AMD EPYC).
SIZES = {"mnist": 10_000, "photos": 2000, "lowres": 5000, "writers": 5000, "per_kind": 300, "fashion": 2000,
         "numbers": 600, "printed": 300, "font_digits": 1000, "font_numbers": 600, "timing": 200}
# Print typefaces matplotlib ships besides DejaVu, which training sets its letters and its
# printed lines in: a page number, a price or a house number the reader has never seen set so.
PRINT_FONTS = tuple(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name for name in (
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf"))


def from_git(ref: str, what: str, folder: Path) -> Path:
    """The package's reader ("reader") or line reader ("lines") as committed at ``ref``,
    copied into ``folder``."""
    source = Path(bundled.reader_dir() if what == "reader" else BUNDLED_LINES.parent)
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=Path(__file__).parent, check=True,
                          capture_output=True, text=True).stdout.strip()
    inside = source.relative_to(Path(root).resolve() / "src").as_posix()
    folder.mkdir(parents=True, exist_ok=True)
    for name in READER_FILES if what == "reader" else (WEIGHTS_FILE,):
        data = subprocess.run(["git", "show", f"{ref}:src/{inside}/{name}"], cwd=root, check=True,
                              capture_output=True).stdout
        atomic.write_bytes(folder / name, data)
    return folder


def resolve(name: str | None, what: str, tmp: Path) -> Path | None:
    """A command-line reader name -> its folder (None: the package's own)."""
    if name in (None, "bundled"):
        return None
    if name.startswith("git:"):
        return from_git(name[4:], what, tmp / f"{what}-{name[4:].replace('/', '_')}")
    return Path(name)


def digit_figures(predictor: Predictor, images: np.ndarray, labels: np.ndarray,
                  blank: np.ndarray | None = None) -> dict[str, float]:
    """Top digit, not a digit, unsure, refused (either), answered right and ECE of one set of
    digits; an image preprocessing found blank counts as refused (and wrong)."""
    probs = predictor.probabilities(images)  # (n, classes), calibrated when the run was
    said = predictor.answers(probs)
    blank = np.zeros(len(labels), bool) if blank is None else blank
    rejected = np.array([a.verdict == "not_a_digit" for a in said]) | blank
    unsure = np.array([a.verdict == "unsure" for a in said]) & ~rejected
    right = (np.array([a.digit for a in said]) == labels) & ~blank
    return {"n": len(labels), "top_digit": float(right.mean()), "not_a_digit": float(rejected.mean()),
            "unsure": float(unsure.mean()), "refused": float((rejected | unsure).mean()),
            "answered_right": float((right & ~rejected & ~unsure).mean()),
            "ece": ece(torch.from_numpy(probs[~blank]),  # blank: nothing was stated
                                   torch.from_numpy(labels[~blank].astype(np.int64)))}


def refused(predictor: Predictor, images: np.ndarray) -> float:
    """The fraction of non-digits answered "not a digit"."""
    said = predictor.answers(predictor.probabilities(images))
    return float(np.mean([a.verdict == "not_a_digit" for a in said]))


def pooled_ece(predictor: Predictor, sets: list[tuple]) -> float:
    """ECE over the union of several digit sets (blank images left out: nothing was stated)."""
    probs, labels = [], []
    for images, y, blank in sets:
        probs.append(predictor.probabilities(images[~blank]))
        labels.append(y[~blank])
    return ece(torch.from_numpy(np.concatenate(probs)),
                           torch.from_numpy(np.concatenate(labels).astype(np.int64)))


def ms_per_digit(predictor: Predictor, image: np.ndarray, repeats: int) -> float:
    """Median ms to classify one 28x28 image on one thread (the network, not decoding)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.probabilities(image[None])
        times.append(time.perf_counter() - start)
    return float(np.median(times[repeats // 10 :]) * 1000)


def ms_per_number(reader: LineReader, pngs: list[bytes], repeats: int) -> float:
    """Median ms to decode and read a photographed 6-digit number, as ``digitnet read`` does."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        numbers.number_from_bytes(pngs[i % len(pngs)], "number", reader)
        times.append(time.perf_counter() - start)
    return float(np.median(times[repeats // 10 :]) * 1000)


def report_sets(sizes: dict[str, int], seed: int) -> dict[str, dict]:
    """Every image of the report's rows, made once and shared by both readers."""
    ds = load("mnist")
    rng = np.random.default_rng(seed)
    pick = lambda n: rng.choice(len(ds.x_test), min(n, len(ds.x_test)), replace=False)  # noqa: E731
    mnist_at = np.arange(len(ds.x_test)) if sizes["mnist"] >= len(ds.x_test) else pick(sizes["mnist"])
    photos_at, lowres_at, writers_at = pick(sizes["photos"]), pick(sizes["lowres"]), pick(sizes["writers"])
    photo, photo_blank = derived_sets.harsh_photos(ds.x_test[photos_at], rng)
    low, low_blank = derived_sets.lowres(np.stack([derived_sets.optdigits_like(d)
                                                   for d in ds.x_test[lowres_at]]))
    digits = {"MNIST test": (ds.x_test[mnist_at], ds.y_test[mnist_at], np.zeros(len(mnist_at), bool)),
              "harsh photos (MNIST test)": (photo, ds.y_test[photos_at], photo_blank),
              "low-res (MNIST test)": (low, ds.y_test[lowres_at], low_blank),
              "other writers (MNIST test)": (derived_sets.other_writers(ds.x_test[writers_at], seed),
                                             ds.y_test[writers_at], np.zeros(len(writers_at), bool))}
    six = [render.render_number(list(ds.x_test[rng.choice(len(ds.x_test), 6, replace=False)]), rng,
                                spacing="clear") for _ in range(20)]
    return {"digits": digits,
            "held-out generators": holdouts.held_out(sizes["per_kind"], rng, sizes["fashion"]),
            "training's generators, other seed": holdouts.training_generators(sizes["per_kind"], rng),
            "numbers": number_figures.compose(ds.x_test, ds.y_test, sizes["numbers"], rng),
            "printed numbers": independent.font_numbers(sizes["printed"], rng, fonts=PRINT_FONTS),
            "six-digit pngs": [cv2.imencode(".png", image)[1].tobytes() for image in six]}


def independent_sets(sizes: dict[str, int], seed: int) -> tuple[dict[str, tuple], dict, dict[str, str]]:
    """The independent checks' digit sets and typeface numbers, and why any is missing."""
    rng = np.random.default_rng(seed + 1)
    digits, missing, font_numbers = {}, {}, []
    try:
        digits["load_digits (independent)"] = independent.load_digits_set()
    except ImportError as e:
        missing["load_digits (independent)"] = str(e)
    try:
        x, y, blank = independent.font_digits(sizes["font_digits"], rng)
        digits["typeface digits, photographed (independent)"] = (x, y, blank)
        font_numbers = independent.font_numbers(sizes["font_numbers"], rng)
    except FileNotFoundError as e:
        missing["typefaces (independent)"] = str(e)
    return digits, font_numbers, missing


def measure(predictor: Predictor, lines: LineReader, sets: dict, digits: bool = True) -> dict[str, dict]:
    """Every figure of one digit reader and line reader on the shared sets (``digits``: False
    for the line reader's rows alone)."""
    if not digits:
        return number_rows(lines, sets)
    out: dict[str, dict] = {name: digit_figures(predictor, *s) for name, s in sets["digits"].items()}
    hold_outs = [s for name, s in sets["digits"].items() if name != "MNIST test"]
    out["calibration"] = {"ece_all_hold_out_digits": pooled_ece(predictor, hold_outs),
                          "ece_scans_and_photos": pooled_ece(predictor, [
                              sets["digits"]["harsh photos (MNIST test)"],
                              sets["digits"]["low-res (MNIST test)"]])}
    if sets.get("independent digits"):  # the same, with the independent checks' digits pooled in
        out["calibration"]["ece_with_independent"] = pooled_ece(
            predictor, hold_outs + list(sets["independent digits"].values()))
    for group in ("held-out generators", "training's generators, other seed"):
        kinds = {kind: (refused(predictor, images), len(images)) for kind, images in sets[group].items()}
        out[group] = {**{k: r for k, (r, _) in kinds.items()},
                      "all": float(np.average([r for r, _ in kinds.values()],
                                              weights=[n for _, n in kinds.values()])),
                      "n": sum(n for _, n in kinds.values())}
    if sets.get("independent digits"):
        for name, s in sets["independent digits"].items():
            out[name] = digit_figures(predictor, *s)
    return {**out, **number_rows(lines, sets)}


def number_rows(lines: LineReader, sets: dict) -> dict[str, dict]:
    """The line reader's figures: numbers composed from MNIST test digits, printed numbers and
    typeface numbers."""
    out = {name: number_figures.summarise(number_figures.read_all(lines, sets[key]))
           for name, key in (("numbers (MNIST test)", "numbers"), ("printed numbers", "printed numbers"))}
    if sets.get("independent numbers"):
        out["typeface numbers (independent)"] = number_figures.summarise(
            number_figures.read_all(lines, sets["independent numbers"]))
    return out


def speed(models: dict[str, tuple[Predictor, LineReader]], sets: dict, repeats: int, rounds: int = 5
          ) -> dict[str, dict[str, float]]:
    """ms per digit and per 6-digit number of each reader, the readers taking turns in
    ``rounds`` rounds so that they share the machine's load; one thread, as a server answers."""
    times: dict[str, dict[str, list[float]]] = {m: {"ms_per_digit": [], "ms_per_6_digit_number": []}
                                                for m in models}
    digit = sets["digits"]["MNIST test"][0][0]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    for _ in range(rounds):
        for m, (predictor, lines) in models.items():
            times[m]["ms_per_digit"].append(ms_per_digit(predictor, digit, max(10, repeats // rounds)))
            times[m]["ms_per_6_digit_number"].append(
                ms_per_number(lines, sets["six-digit pngs"], max(10, repeats // rounds)))
    torch.set_num_threads(previous)
    return {m: {k: float(np.median(v)) for k, v in t.items()} for m, t in times.items()}


DIGIT_KEYS = ("top_digit", "not_a_digit", "unsure", "refused", "answered_right", "ece")


def table(results: dict[str, dict], models: dict[str, str]) -> str:
    """One line per row and reader, in the issue's order; figures as fractions."""
    names = list(results)
    first = results[names[0]]
    lines = [f"readers: {', '.join(f'{n} = {d}' for n, d in models.items())}", ""]

    def header(title: str, cols: tuple[str, ...]) -> None:
        lines.append(f"{title:46s} {'':3s}" + "".join(f"{c:>15s}" for c in cols))

    def row(label: str, m: str, values: list) -> None:
        lines.append(f"{label:46s} {m:3s}" + "".join(f"{v:15.4f}" if isinstance(v, float) else f"{'':15s}"
                                                     for v in values))

    if any("top_digit" in figures for figures in first.values()):
        header("digits", DIGIT_KEYS)
    for name, figures in first.items():
        if "top_digit" in figures and "independent" not in name:
            for m in names:
                row(f"{name} (n={figures['n']})", m, [results[m][name][k] for k in DIGIT_KEYS])
    if "calibration" in first:
        header("\ncalibration (ECE, 11 classes)", ("all hold-outs", "scans+photos", "+independent"))
        for m in names:
            row("hold-out digits (all but MNIST test)", m, list(results[m]["calibration"].values()))
    for group in ("held-out generators", "training's generators, other seed"):
        if group not in first:
            continue
        header(f"\nnon-digits refused: {group}", ("refused",))
        for kind in first[group]:
            if kind != "n":
                for m in names:
                    label = kind if kind != "all" else f"all (n={first[group]['n']})"
                    row(label, m, [results[m][group][kind]])

    def numbers_rows(name: str) -> None:
        header(f"\n{name}: exact", ("clear", "tight", "touching", "all", "per digit", "number ECE"))
        for m in names:
            r = results[m][name]
            row(f"(n={r['by_spacing']['all']['numbers']})", m,
                [r["by_spacing"].get(k, {}).get("exact") for k in ("clear", "tight", "touching", "all")]
                + [r["per_digit"], r["number_ece"]])

    numbers_rows("numbers (MNIST test)")
    numbers_rows("printed numbers")
    header("\nspeed (ms, median, one thread)", ("per digit", "per 6-digit"))
    for m in names:
        row("", m, list(results[m]["speed"].values()))
    independents = [n for n, f in first.items() if "top_digit" in f and "independent" in n]
    if independents or "typeface numbers (independent)" in first:
        lines.append("\n" + "=" * 40 + " INDEPENDENT CHECKS: never used for any choice " + "=" * 40)
        header("", DIGIT_KEYS)
        for name in independents:
            for m in names:
                row(f"{name} (n={first[name]['n']})", m, [results[m][name][k] for k in DIGIT_KEYS])
    if "typeface numbers (independent)" in first:
        numbers_rows("typeface numbers (independent)")
    return "\n".join(lines)


def make_sets(which: str, sizes: dict[str, int], seed: int) -> tuple[dict, dict[str, str]]:
    """The sets of ``--sets``, and why any independent check is missing."""
    sets: dict = report_sets(sizes, seed)
    missing: dict[str, str] = {}
    if which in ("all", "numbers"):
        sets["independent digits"], sets["independent numbers"], missing = independent_sets(sizes, seed)
    return sets, missing


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", default="bundled", help="digit reader A: a run, 'bundled' or 'git:REF'")
    parser.add_argument("--compare", default=None, help="digit reader B, measured in the same run")
    parser.add_argument("--lines", default="bundled",
                        help="line reader of A: a folder, 'bundled' or 'git:REF'")
    parser.add_argument("--compare-lines", default="bundled", help="line reader of B")
    parser.add_argument("--backend", choices=RUNTIMES, default="torch", help="runtime of reader A")
    parser.add_argument("--compare-backend", choices=RUNTIMES, default="torch", help="runtime of reader B")
    parser.add_argument("--scale", type=float, default=1.0, help=f"set sizes times this ({SIZES})")
    parser.add_argument("--sets", choices=("all", "report", "numbers"), default="all",
                        help="every row, the report's rows without the independent checks, or "
                             "the rows of numbers alone (the same sets as all)")
    parser.add_argument("--seed", type=int, default=20261126, help="never used in training")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = {k: max(1, int(v * args.scale)) for k, v in SIZES.items()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="digitnet-bench-") as tmp:
        names = {"A": (args.reader, args.lines, args.backend)}
        if args.compare is not None:
            names["B"] = (args.compare, args.compare_lines, args.compare_backend)
        models = {m: (Predictor.from_run(bundled.model_dir(resolve(r, "reader", Path(tmp))), backend=b),
                      LineReader.load(resolve(lr, "lines", Path(tmp))))
                  for m, (r, lr, b) in names.items()}
        print("making the sets ...", file=sys.stderr)
        sets, missing = make_sets(args.sets, sizes, args.seed)
        print(f"measuring {', '.join(models)} ...", file=sys.stderr)
        results = {m: measure(p, lr, sets, digits=args.sets != "numbers") for m, (p, lr) in models.items()}
        for m, figures in speed(models, sets, sizes["timing"]).items():
            results[m]["speed"] = figures
    described = {m: f"reader {r} ({b}), line reader {lr}" for m, (r, lr, b) in names.items()}
    print(table(results, described))
    for name, why in missing.items():
        print(f"{name}: not measured: {why}")
    result = {"readers": described, "seed": args.seed, "scale": args.scale, "cpu": cpu_model(),
              "cores": os.cpu_count(), "seconds": round(time.perf_counter() - started, 1),
              "missing": missing, "results": results}
    print(f"{result['cpu']}, {result['cores']} cores, {result['seconds']:.0f} s")
    if args.json:
        atomic.write_json(args.json, result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
