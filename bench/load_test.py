"""Load test of ``digitnet serve``: bounded bursts of real requests against 127.0.0.1 only.

For each kind of image (``bench/samples.py``: 280x280 drawings, ~0.1 MP photos, 12 MP phone
JPEGs) it starts a fresh server in a subprocess on a free loopback port, sends a few warm-up
requests, then ``--requests`` images, ``--concurrency`` at a time, stopping early at
``--time-limit`` seconds; it checks the shape of every answer and reports requests/s, latency
percentiles, errors, the server's CPU time per request (all its processes), the client's own
CPU time per request and the cores it kept busy (it shares the machine's cores), the CPU time
of the same work called in process without HTTP (the difference is what a request costs beyond
preprocessing and the network), and the peak
resident memory of all the server's processes (the sum of each one's VmHWM: supervisor and
workers). With ``--baseline-src`` the same runs are made,
interleaved, against another checkout's ``src/`` (served as it is, one process), so before
and after come from one run. Prints a table, then one JSON object.

A benchmark, not a test: figures depend on the machine and on whatever else runs on it
(the client runs on the same cores as the server).

    python bench/load_test.py [RUN_DIR] [--kinds drawing,photo,phone] [--workers 2]
                              [--baseline-src ../before/src] [--requests 2000] [--concurrency 16]
                              [--endpoint predict|explain|read]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import samples  # bench/samples.py, beside this script
import server  # bench/server.py, beside this script
from server import HOST

from digitnet import runs
from digitnet.benchmarks.runner import cpu_model
from digitnet.threads import serving_threads

MIME = {"drawing": ("png", "image/png"), "photo": ("jpg", "image/jpeg"), "phone": ("jpg", "image/jpeg")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", type=Path, help="run to serve (default: the latest under runs/)")
    p.add_argument("--kinds", default=",".join(samples.KINDS),
                   help=f"kinds of image, comma-separated (default {','.join(samples.KINDS)})")
    p.add_argument("--requests", type=int, default=2000, help="requests per kind and server (default 2000)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight at once (default 16)")
    p.add_argument("--time-limit", type=float, default=60.0,
                   help="stop sending after this many seconds, per kind and server (default 60)")
    p.add_argument("--endpoint", choices=("predict", "explain", "read"), default="predict")
    p.add_argument("--images", type=int, default=100, help="distinct images per kind to cycle through")
    p.add_argument("--phone-images", type=int, default=8, help="distinct phone photos (slow to make)")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads per request")
    p.add_argument("--workers", type=int, default=1, help="server processes (digitnet serve --workers)")
    p.add_argument("--baseline-src", type=Path,
                   help="also measure the digitnet in this src/ folder (one process), interleaved")
    args = p.parse_args(argv)
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(args.kinds) - set(samples.KINDS)
    if unknown:
        p.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(samples.KINDS)}")
    return args


def shape_problem(endpoint: str, answer: dict) -> str | None:
    """None if the answer has the documented shape, else what is wrong with it."""
    if endpoint == "explain":
        maps = answer.get("saliency") or [{}]
        if not all(np.array(m.get("values", [])).shape == (28, 28) for m in maps):
            return "saliency"
        return None if np.array(answer["feature_maps"]["values"]).ndim == 3 else "feature_maps"
    if endpoint == "predict":
        p = answer.get("probabilities")
        if not (isinstance(p, list) and len(p) in (10, 11) and abs(sum(p) - 1) < 1e-3):  # 11: the reader
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


async def load_test(args: argparse.Namespace, base_url: str, kind: str, data: list[bytes],
                    labels: list[int], server_pid: int) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    problems: dict[str, int] = {}
    correct = 0
    next_index = 0
    ext, mime = MIME[kind]
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:

        async def send(k: int) -> httpx.Response:
            return await client.post(f"/api/{args.endpoint}", files={"file": (f"{k}.{ext}", data[k], mime)})

        await asyncio.gather(*(send(k % len(data)) for k in range(args.concurrency)))  # warm-up
        start = time.perf_counter()
        cpu_start = server.cpu_seconds(server_pid), time.process_time()

        async def worker() -> None:
            nonlocal next_index, correct
            while next_index < args.requests and time.perf_counter() - start < args.time_limit:
                k = next_index % len(data)
                next_index += 1
                t0 = time.perf_counter()
                try:
                    r = await send(k)
                except httpx.TransportError as e:
                    statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
                    continue
                finally:
                    latencies.append(time.perf_counter() - t0)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                if r.status_code != 200:
                    continue
                answer = r.json()
                problem = shape_problem(args.endpoint, answer)
                if problem:
                    problems[problem] = problems.get(problem, 0) + 1
                else:
                    correct += is_right(args.endpoint, answer, labels[k])

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        seconds = time.perf_counter() - start
        server_cpu = server.cpu_seconds(server_pid) - cpu_start[0]
        client_cpu = time.process_time() - cpu_start[1]
    return figures(latencies, statuses, problems, correct, seconds, server_cpu, client_cpu, args.requests)


def is_right(endpoint: str, answer: dict, label: int) -> bool:
    """Whether a well-formed answer of ``endpoint`` names the image's label."""
    if endpoint == "predict":
        return answer["digit"] == label
    if endpoint == "explain":
        return answer["answer"]["digit"] == label
    return answer["text"] == str(label)


def figures(latencies: list[float], statuses: dict[str, int], problems: dict[str, int], correct: int,
            seconds: float, server_cpu: float, client_cpu: float, requested: int) -> dict:
    """One image kind's record: requests, answers, latency percentiles and CPU per request."""
    ms = np.array(latencies) * 1000
    done = len(latencies)
    return {
        "requests": done,
        "stopped_by_time_limit": done < requested,
        "status_codes": dict(sorted(statuses.items())),
        "errors": done - statuses.get("200", 0) + sum(problems.values()),
        "bad_shape": problems,
        "correct": correct,
        "seconds": round(seconds, 2),
        "throughput_rps": round(done / seconds, 1),
        "latency_ms": {q: round(float(np.percentile(ms, p)), 1)
                       for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
        # CPU time per request, less sensitive than throughput to what else runs on the machine
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, done), 2),
        "client_cpu_ms_per_request": round(1000 * client_cpu / max(1, done), 2),
        # the cores the load client itself kept busy: what the server could not have
        "client_cores": round(client_cpu / seconds, 2),
    }


def in_process_cpu_ms(run_dir: Path, endpoint: str, data: list[bytes], threads: int) -> float:
    """CPU ms per image of the same work without HTTP: the function the route hands to its
    worker thread (decode, preprocess, network, answer), called directly. The server's CPU per
    request less this is what HTTP parsing, multipart, JSON and thread hand-offs cost."""
    from digitnet.errors import DigitnetError
    from digitnet.inference.predictor import Predictor
    from digitnet.runs.line_reading import LineReader
    from digitnet.web import service

    if endpoint == "read":
        reader = LineReader.load()  # the server's own without --line-reader

        def work(image: bytes):
            return service.read_image(image, "bench", reader)
    else:
        predictor = Predictor.from_run(run_dir, threads=threads)
        answer = service.predict_image if endpoint == "predict" else service.explain_image

        def work(image: bytes):
            return answer(image, "bench", predictor)

    def timed(image: bytes) -> None:
        with contextlib.suppress(DigitnetError):  # refused, as the server does (a 4xx): it counts
            work(image)

    timed(data[0])  # the first call pays for lazy set-up, as the server's warm-up does
    with serving_threads(threads):  # the threads the server answers on
        start = time.process_time()
        for image in data:
            timed(image)
        return 1000 * (time.process_time() - start) / len(data)


async def measure(args: argparse.Namespace, run_dir: Path, kind: str, data: list[bytes], labels: list[int],
                  src: Path | None) -> dict:
    """One fresh server (``src``: the baseline's), one kind of image: the load test's figures,
    the server's peak memory and the load average before and after."""
    port = server.free_port()
    options = ["--threads", str(args.threads)] + (["--workers", str(args.workers)] if src is None else [])
    process = server.start(run_dir, port, *options, stderr=subprocess.PIPE, src=src)
    try:
        await server.wait_ready(port, process, timeout=180)
        load_before = os.getloadavg()[0]
        result = await load_test(args, f"http://{HOST}:{port}", kind, data, labels, process.pid)
        # this checkout's code only: a baseline's is another src/, run in its own process
        result["in_process_cpu_ms_per_request"] = (None if src is not None else round(
            in_process_cpu_ms(run_dir, args.endpoint, data, args.threads), 2))
        result["server_peak_rss_mb"] = server.peak_rss_mb(process.pid)
        result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    finally:
        process.terminate()
        process.wait(timeout=60)
    return result


def table(results: list[dict]) -> str:
    head = (f"{'kind':8} {'server':9} {'req/s':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
            f"{'errors':>6} {'right':>6} {'RSS MB':>7} {'CPU ms':>7} {'no HTTP':>7} {'client':>13} "
            f"{'load':>10}")
    rows = [head]
    for r in results:
        lat, load = r["latency_ms"], r["load_average"]
        in_process = r["in_process_cpu_ms_per_request"]
        no_http = "-" if in_process is None else f"{in_process:.2f}"
        rows.append(f"{r['kind']:8} {r['server']:9} {r['throughput_rps']:7.1f} {lat['p50']:8.1f} "
                    f"{lat['p90']:8.1f} {lat['p99']:8.1f} {r['errors']:6d} "
                    f"{r['correct'] / max(1, r['requests']):6.1%} {r['server_peak_rss_mb']:7.0f} "
                    f"{r['server_cpu_ms_per_request']:7.2f} {no_http:>7} "
                    f"{r['client_cpu_ms_per_request']:5.2f} ms {r['client_cores']:3.1f}c "
                    f"{load[0]:4.1f}-{load[1]:<4.1f}")
    return "\n".join(rows)


async def run(args: argparse.Namespace) -> dict:
    run_dir = runs.resolve_run_dir(args.run_dir)
    servers: list[tuple[str, Path | None]] = [("current", None)]
    if args.baseline_src:
        servers.insert(0, ("baseline", args.baseline_src.resolve()))
    results = []
    for kind in args.kinds:
        data, labels = samples.samples(kind, args.phone_images if kind == "phone" else args.images)
        for name, src in servers:
            print(f"{kind} against {name} ...", file=sys.stderr, flush=True)
            result = await measure(args, run_dir, kind, data, labels, src)
            results.append({"kind": kind, "server": name, **result})
    return {"run_dir": str(run_dir), "endpoint": f"/api/{args.endpoint}", "concurrency": args.concurrency,
            "workers": args.workers, "baseline_src": str(args.baseline_src) if args.baseline_src else None,
            "cpu": cpu_model(), "cpus": os.cpu_count(), "results": results}


def main(argv: list[str] | None = None) -> int:
    summary = asyncio.run(run(parse_args(argv)))
    print(f"{summary['cpu']}, {summary['cpus']} CPUs; {summary['concurrency']} clients; current server: "
          f"{summary['workers']} worker process(es)")
    print(table(summary["results"]))
    print(json.dumps(summary))
    return 0 if all(r["errors"] == 0 for r in summary["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
