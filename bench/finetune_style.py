"""A person corrects a writing style the reader misreads; how well does fine-tuning learn it?

Plays the user: ``--corrections`` drawings of ``--style`` (``digitnet.vision.styles``, drawn as
the page draws) are posted to ``/api/corrections`` with their right label, through the real
application (the server's per-client limit raised for this one user), accepted as an admin
would accept them; then ``digitnet finetune`` runs on the store, timed. The style is measured on
``--test`` drawings from another seed, never corrected, before and after; MNIST test accuracy
comes from finetune itself. Prints one JSON object; exit code 1 if a goal is missed (style
read right >= 95%, MNIST test within 0.1 points, fine-tuning under 2 minutes).

    python bench/finetune_style.py [RUN_DIR] [--style one_flag] [--corrections 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from fastapi.testclient import TestClient

from digitnet.cli import main as digitnet
from digitnet.corrections import store
from digitnet.inference import bundled
from digitnet.inference.predictor import Predictor
from digitnet.runs.run import Run
from digitnet.vision import imaging, styles
from digitnet.web.app import Settings, create_app


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", help="the reader to start from (default: the bundled one)")
    p.add_argument("--style", choices=tuple(styles.STYLES), default="one_flag")
    p.add_argument("--corrections", type=int, default=200, help="drawings the user corrects")
    p.add_argument("--test", type=int, default=500, help="fresh drawings to measure the style on")
    return p.parse_args(argv)


def post(run_dir: Path, store_dir: Path, style: str, n: int) -> int:
    """Post ``n`` drawings of ``style`` with the right label; how many the reader had wrong."""
    rng = np.random.default_rng(0)
    label = str(styles.digit_of(style))
    wrong = 0
    # one user sends them all: the server's per-client limit is raised to let them in
    settings = Settings(run_dir=run_dir, store=store_dir, corrections_per_client=max(n, 1))
    with TestClient(create_app(settings)) as client:
        for drawing in styles.render_many(style, n, rng):
            png = cv2.imencode(".png", drawing)[1].tobytes()
            r = client.post("/api/corrections", files={"file": ("drawing.png", png, "image/png")},
                            data={"label": label})
            r.raise_for_status()
            wrong += not r.json()["right"]
    return wrong


def style_accuracy(run: Run | Path, style: str, n: int) -> float:
    rng = np.random.default_rng(12345)  # not the corrections' seed
    x = np.stack([imaging.to_mnist(d) for d in styles.render_many(style, n, rng)])
    said = Predictor.from_run(run, backend="torch").probabilities(x).argmax(1)
    return float((said == styles.digit_of(style)).mean())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = bundled.model_dir(args.run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        store_dir, out = Path(tmp) / "store", Path(tmp) / "tuned"
        wrong = post(start, store_dir, args.style, args.corrections)
        db = store_dir / "corrections.sqlite"
        store.review(db, "accepted", [c.id for c in store.summaries(db, status="pending")])  # the admin
        t0, cpu0 = time.perf_counter(), time.process_time()
        code = digitnet(["finetune", "--corrections", str(db),
                         "--run", str(start), "--out", str(out)])
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        result = {"start": str(start), "style": args.style, "corrections": args.corrections,
                  "misread_when_sent": wrong, "finetune_exit_code": code,
                  "finetune_seconds": round(seconds, 1), "finetune_cpu_seconds": round(cpu, 1),
                  "style_before": style_accuracy(start, args.style, args.test)}
        if code == 0:
            run = Run.open(out)
            tuned = run.finished_metrics()["finetune"]
            result |= {"style_after": style_accuracy(run, args.style, args.test),
                       "mnist_before": tuned["before"]["mnist_test"],
                       "mnist_after": tuned["after"]["mnist_test"],
                       "held_out_before": tuned["before"]["held_out"],
                       "held_out_after": tuned["after"]["held_out"]}
    result |= {"torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
               "load_average": [round(v, 2) for v in os.getloadavg()]}
    print(json.dumps(result, indent=2))
    ok = (code == 0 and result["style_after"] >= 0.95 and seconds < 120
          and result["mnist_after"] >= result["mnist_before"] - 0.001)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
