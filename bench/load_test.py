"""Load test of ``digitnet serve``: a bounded burst of real requests against 127.0.0.1 only.

Starts the server in a subprocess on a free loopback port, sends ``--requests`` photos of MNIST
test digits (rendered by ``digitnet.vision.render``), ``--concurrency`` at a time, stops early at
``--time-limit`` seconds, checks the shape of every answer, and prints one JSON object with
the latency percentiles and the throughput. A benchmark, not a test: figures depend on the
machine and on whatever else runs on it.

    python bench/load_test.py [RUN_DIR] [--requests 2000] [--concurrency 16] [--time-limit 120]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import server  # bench/server.py, beside this script
from server import HOST

from digitnet.datasets import load
from digitnet.training import runs
from digitnet.vision.render import render_photo


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", type=Path, help="run to serve (default: the latest under runs/)")
    p.add_argument("--requests", type=int, default=2000, help="requests to send (default 2000)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight at once (default 16)")
    p.add_argument("--time-limit", type=float, default=120.0, help="stop sending after this many seconds")
    p.add_argument("--endpoint", choices=("predict", "read"), default="predict")
    p.add_argument("--images", type=int, default=200, help="distinct test photos to cycle through")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads per request")
    return p.parse_args(argv)


def photos(n: int, seed: int = 0) -> tuple[list[bytes], list[int]]:
    """``n`` PNG photos of MNIST test digits, and their labels."""
    ds = load("mnist")
    rng = np.random.default_rng(seed)
    data = []
    for i in range(n):
        image, _ = render_photo(ds.x_test[i], rng)
        ok, png = cv2.imencode(".png", image)
        assert ok
        data.append(png.tobytes())
    return data, [int(y) for y in ds.y_test[:n]]


def shape_problem(endpoint: str, answer: dict) -> str | None:
    """None if the answer has the documented shape, else what is wrong with it."""
    if endpoint == "predict":
        p = answer.get("probabilities")
        if not (isinstance(p, list) and len(p) == 10 and abs(sum(p) - 1) < 1e-3):
            return "probabilities"
        if answer.get("digit") not in range(10) or not 0 <= answer.get("probability", -1) <= 1:
            return "digit/probability"
        png = base64.b64decode(answer.get("preprocessed", ""))
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        return None if image is not None and image.shape == (28, 28) else "preprocessed"
    digits = answer.get("digits")
    if not isinstance(digits, list) or answer.get("text") != "".join(str(d["digit"]) for d in digits):
        return "text/digits"
    return None if all(len(d.get("box", ())) == 4 for d in digits) else "box"


async def load_test(args: argparse.Namespace, base_url: str, data: list[bytes], labels: list[int]) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    problems: dict[str, int] = {}
    correct = 0
    next_index = 0
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal next_index, correct
            while next_index < args.requests and time.perf_counter() - start < args.time_limit:
                i = next_index
                next_index += 1
                k = i % len(data)
                t0 = time.perf_counter()
                upload = {"file": (f"{k}.png", data[k], "image/png")}
                r = await client.post(f"/api/{args.endpoint}", files=upload)
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code != 200:
                    continue
                answer = r.json()
                problem = shape_problem(args.endpoint, answer)
                if problem:
                    problems[problem] = problems.get(problem, 0) + 1
                elif args.endpoint == "predict":
                    correct += answer["digit"] == labels[k]
                else:
                    correct += answer["text"] == str(labels[k])

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        seconds = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    done = len(latencies)
    return {
        "endpoint": f"/api/{args.endpoint}",
        "requests": done,
        "stopped_by_time_limit": done < args.requests,
        "concurrency": args.concurrency,
        "status_codes": {str(k): v for k, v in sorted(statuses.items())},
        "bad_shape": problems,
        "correct": correct,
        "seconds": round(seconds, 2),
        "throughput_rps": round(done / seconds, 1),
        "latency_ms": {q: round(float(np.percentile(ms, p)), 1)
                       for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
        "cpus": os.cpu_count(),
    }


async def run(args: argparse.Namespace) -> dict:
    run_dir = runs.resolve_run_dir(args.run_dir)
    data, labels = photos(args.images)
    port = server.free_port()
    process = server.start(run_dir, port, "--threads", str(args.threads), stderr=subprocess.PIPE)
    try:
        await server.wait_ready(port, process)
        result = await load_test(args, f"http://{HOST}:{port}", data, labels)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"run_dir": str(run_dir), **result}


def main(argv: list[str] | None = None) -> int:
    result = asyncio.run(run(parse_args(argv)))
    print(json.dumps(result, indent=2))
    ok = result["status_codes"] == {"200": result["requests"]} and not result["bad_shape"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
