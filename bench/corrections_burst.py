"""Burst of corrections: does the store keep every correction sent, under load?

Starts ``--servers`` ``digitnet serve`` processes on loopback ports, all with one store (one
SQLite file written by several processes at once), then ``--concurrency`` clients post
corrections (page-style drawings, as multipart PNGs with a label) for ``--seconds``, spread
over the servers. Afterwards it counts the rows in the database: every 201 must be there,
once, with the label sent, and nothing else. Prints one JSON object; exit code 1 if anything
was lost, duplicated or refused. A benchmark, not a test: the throughput depends on the
machine and on whatever else runs on it.

    python bench/corrections_burst.py [RUN_DIR] [--seconds 30] [--concurrency 16] [--servers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import server  # bench/server.py, beside this script
from server import HOST

from digitnet.corrections import store
from digitnet.inference import bundled
from digitnet.vision import styles


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", help="run to serve (default: the bundled reader)")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to send (default 30)")
    p.add_argument("--concurrency", type=int, default=16, help="clients sending at once (default 16)")
    p.add_argument("--servers", type=int, default=2,
                   help="server processes sharing the store (default 2)")
    p.add_argument("--images", type=int, default=60, help="distinct drawings to cycle through")
    return p.parse_args(argv)


def drawings(n: int, seed: int = 0) -> list[tuple[bytes, str]]:
    """``n`` (PNG, label) pairs: drawings in every style, labelled with their digit."""
    rng = np.random.default_rng(seed)
    names = list(styles.STYLES)
    out = []
    for i in range(n):
        style = names[i % len(names)]
        ok, png = cv2.imencode(".png", styles.render(style, rng))
        assert ok
        out.append((png.tobytes(), str(styles.digit_of(style))))
    return out


async def burst(urls: list[str], data: list[tuple[bytes, str]], seconds: float,
                concurrency: int) -> dict:
    sent: dict[int, str] = {}  # id -> label, from each 201
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=60) for url in urls]
    start = time.perf_counter()

    async def client(c: int) -> None:
        k = c
        while time.perf_counter() - start < seconds:
            png, label = data[k % len(data)]
            k += concurrency
            t0 = time.perf_counter()
            r = await clients[k % len(clients)].post(
                "/api/corrections", files={"file": ("drawing.png", png, "image/png")},
                data={"label": label})
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 201:
                sent[r.json()["id"]] = label

    try:
        await asyncio.gather(*(client(c) for c in range(concurrency)))
    finally:
        for c in clients:
            await c.aclose()
    ms = np.array(latencies) * 1000
    return {"sent": len(latencies), "stored_201": len(sent), "ids": sent,
            "status_codes": {str(k): v for k, v in sorted(statuses.items())},
            "seconds": round(time.perf_counter() - start, 1),
            "per_second": round(len(latencies) / (time.perf_counter() - start), 1),
            "latency_ms": {q: round(float(np.percentile(ms, p)), 1)
                           for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}}


def rows(db: Path) -> dict[int, str]:
    with sqlite3.connect(db) as connection:
        return dict(connection.execute("SELECT id, label FROM corrections"))


async def run(args: argparse.Namespace) -> dict:
    run_dir = bundled.model_dir(args.run_dir)
    data = drawings(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp) / "store"
        ports = [server.free_port() for _ in range(args.servers)]
        processes = [server.start(run_dir, port, "--store", str(store_dir), stderr=subprocess.PIPE)
                     for port in ports]
        try:
            for port, process in zip(ports, processes, strict=True):
                await server.wait_ready(port, process)
            result = await burst([f"http://{HOST}:{p}" for p in ports], data, args.seconds,
                                 args.concurrency)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
        kept = rows(store_dir / store.FILE_NAME)
    sent = result.pop("ids")
    return {"run_dir": str(run_dir), "servers": args.servers, "concurrency": args.concurrency,
            **result, "rows_in_database": len(kept),
            "lost": len(set(sent) - set(kept)), "unexpected": len(set(kept) - set(sent)),
            "wrong_label": sum(kept.get(i) != label for i, label in sent.items() if i in kept),
            "cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    result = asyncio.run(run(parse_args(argv)))
    print(json.dumps(result, indent=2))
    ok = (result["status_codes"] == {"201": result["sent"]} and result["rows_in_database"] == result["sent"]
          and not result["lost"] and not result["unexpected"] and not result["wrong_label"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
