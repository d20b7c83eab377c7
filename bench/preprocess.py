"""Time to read one image, per kind (``bench/samples.py``: drawings, ~0.1 MP photos, 12 MP phone
JPEGs), in one process on one thread: decoding, preprocessing (``imaging.to_mnist``) and the
whole answer of ``POST /api/predict`` without HTTP (``web.service.predict_image``: decode,
preprocess, the network, the PNG of the 28x28 input).

With ``--baseline-src`` the same measurements run, in alternating rounds, against another
checkout's ``src/`` (e.g. a ``git worktree`` of an older commit), so before and after are
measured side by side under the same load. Prints a table of medians, then one JSON object.

    python bench/preprocess.py RUN_DIR [--baseline-src ../before/src] [--rounds 3]
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

import numpy as np
import samples  # bench/samples.py, beside this script

from digitnet.benchmarks.runner import cpu_model

COUNTS = {"drawing": 50, "photo": 50, "phone": 6}
STAGES = ("decode", "preprocess", "end_to_end")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="the run whose model answers")
    p.add_argument("--baseline-src", type=Path, help="also measure the digitnet in this src/ folder")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per version (default 3)")
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: one round, samples file
    return p.parse_args(argv)


def measure(run_dir: Path, images: dict[str, list[bytes]]) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per image and stage, for the digitnet importable here, on one thread."""
    import cv2

    from digitnet.vision import imaging
    from digitnet.web import service

    cv2.setNumThreads(1)  # as each server worker does: requests, not OpenCV, run in parallel
    predictor = service.load_model(run_dir, "auto").predictor
    # the decoding the server itself uses: scaled grey JPEGs where this version has them
    new = hasattr(imaging, "DIGIT_PHOTO_SIDE")
    scaled = {"min_side": imaging.DIGIT_PHOTO_SIDE, "gray": True} if new else {}
    times: dict[str, dict[str, list[float]]] = {}
    for kind, files in images.items():
        stages = times[kind] = {stage: [] for stage in STAGES}
        service.predict_image(files[0], "warm-up", predictor)
        for data in files:
            t0 = time.perf_counter()
            image = imaging.decode(data, "image", **scaled)
            t1 = time.perf_counter()
            imaging.to_mnist(image)
            t2 = time.perf_counter()
            service.predict_image(data, "image", predictor)
            t3 = time.perf_counter()
            stages["decode"].append(1000 * (t1 - t0))
            stages["preprocess"].append(1000 * (t2 - t1))
            stages["end_to_end"].append(1000 * (t3 - t2))
    return times


def one_round(run_dir: Path, samples_file: Path, src: Path | None) -> dict:
    """A subprocess measuring the digitnet in ``src`` (None: the one importable here)."""
    env = os.environ.copy()
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    out = subprocess.run([sys.executable, __file__, str(run_dir), "--measure", str(samples_file)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def save_samples(path: Path, images: dict[str, list[bytes]]) -> None:
    """The encoded images, for the measuring process: an .npz of uint8 arrays (no pickle)."""
    np.savez(path, **{f"{kind}-{i:04d}": np.frombuffer(data, np.uint8)
                      for kind, files in images.items() for i, data in enumerate(files)})


def load_samples(path: Path) -> dict[str, list[bytes]]:
    with np.load(path, allow_pickle=False) as npz:
        images: dict[str, list[bytes]] = {}
        for key in sorted(npz.files):
            images.setdefault(key.rsplit("-", 1)[0], []).append(npz[key].tobytes())
    return images


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        images = load_samples(args.measure)
        print(json.dumps(measure(args.run_dir, images)))
        return 0
    images = {kind: samples.samples(kind, n)[0] for kind, n in COUNTS.items()}
    versions: list[tuple[str, Path | None]] = [("current", None)]
    if args.baseline_src:
        versions.insert(0, ("baseline", args.baseline_src.resolve()))
    merged = {name: {kind: {stage: [] for stage in STAGES} for kind in COUNTS} for name, _ in versions}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        samples_file = Path(tmp) / "samples.npz"
        save_samples(samples_file, images)
        for r in range(args.rounds):
            for name, src in versions:
                print(f"round {r + 1}: {name} ...", file=sys.stderr, flush=True)
                for kind, stages in one_round(args.run_dir, samples_file, src).items():
                    for stage, ms in stages.items():
                        merged[name][kind][stage].extend(ms)
                load.append(os.getloadavg()[0])
    medians = {name: {kind: {stage: round(float(np.median(ms)), 2) for stage, ms in stages.items()}
                      for kind, stages in kinds.items()} for name, kinds in merged.items()}
    summary = {"cpu": cpu_model(), "load_average": [round(min(load), 2), round(max(load), 2)],
               "images": COUNTS, "rounds": args.rounds, "median_ms": medians}
    print(f"{summary['cpu']}; load average {summary['load_average'][0]}-{summary['load_average'][1]}; "
          f"median ms per image, one thread")
    print(f"{'kind':8} {'version':9} " + " ".join(f"{s:>11}" for s in STAGES))
    for kind in COUNTS:
        for name in medians:
            print(f"{kind:8} {name:9} " + " ".join(f"{medians[name][kind][s]:11.2f}" for s in STAGES))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
