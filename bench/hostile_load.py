"""Hostile-input load run of ``digitnet serve``: many clients sending only bad requests.

Starts the server in a subprocess on a free loopback port (127.0.0.1 only) and lets
``--concurrency`` clients send, for ``--seconds``, a round-robin mix of what a careless or
malicious client sends: tiny odd images, long thin images, malformed multipart bodies, a huge
declared body, wrong content types and JSON shapes, garbage bytes, an image over the pixel
limit, and one good photo as a control. Prints one JSON object: per kind and overall the
status counts and latency percentiles, transport failures, and the server's peak RSS (VmHWM).
A trusted server answers every one of them at once with a 4xx, never a 5xx or a timeout, and
stays small. A benchmark, not a test: figures depend on the machine and its other load.

    python bench/hostile_load.py [RUN_DIR] [--seconds 30] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import httpx
import numpy as np
import server as server_process  # bench/server.py, beside this script
from server import HOST

from digitnet.training import runs

HOW = "multipart/form-data; boundary=b"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", type=Path, help="run to serve (default: the latest under runs/)")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to send (default 30)")
    p.add_argument("--concurrency", type=int, default=16, help="clients at once (default 16)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a client waits for an answer")
    p.add_argument("--server-memory-gb", type=float, default=8.0,
                   help="RLIMIT_DATA of the server, so a runaway server fails instead of the machine")
    return p.parse_args(argv)


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def checkerboard(h: int, w: int) -> np.ndarray:
    return ((np.indices((h, w)).sum(axis=0) % 2) * 255).astype(np.uint8)


def good_photo() -> bytes:
    paper = np.full((120, 120), 235, np.uint8)
    cv2.putText(paper, "7", (25, 100), cv2.FONT_HERSHEY_SIMPLEX, 3.5, 20, 10)
    return png(paper)


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: bytes = b"b") -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += b"--" + boundary + f"\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


def requests() -> dict[str, dict]:
    """Each kind of bad request: httpx keyword arguments for a POST (route under "route")."""
    rng = np.random.default_rng(0)
    good = good_photo()
    corrupted = bytearray(good)
    corrupted[40:200] = rng.integers(0, 256, 160, dtype=np.uint8).tobytes()

    def upload(data: bytes, route: str = "/api/read") -> dict:
        return {"route": route, "files": {"file": ("x.png", data, "image/png")}}

    return {
        "good_photo_read": upload(good),
        "checker_2x2": upload(png(checkerboard(2, 2))),
        "bar_2x40": upload(png(np.tile(np.r_[np.zeros(20), np.full(20, 255)].astype(np.uint8), (2, 1)))),
        "line_1x3000": upload(png(checkerboard(1, 3000))),
        "thin_4000x3": upload(png((rng.integers(0, 2, (3, 4000)) * 255).astype(np.uint8))),
        "thin_3x4000_predict": upload(png((rng.integers(0, 2, (4000, 3)) * 255).astype(np.uint8)),
                                      "/api/predict"),
        "solid_bar_60x3000": upload(png(np.pad(np.zeros((40, 2980), np.uint8), 10, constant_values=255))),
        "over_40mp": upload(png(np.full((5000, 8001), 255, np.uint8))),
        "garbage_bytes": upload(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        "corrupted_png": upload(bytes(corrupted), "/api/predict"),
        "multipart_no_boundary": {"route": "/api/read", "content": b"whatever",
                                  "headers": {"content-type": "multipart/form-data"}},
        "multipart_two_files": {"route": "/api/read", "headers": {"content-type": HOW},
                                "content": multipart([("file", "a.png", good), ("file", "b.png", good)])},
        "multipart_many_fields": {"route": "/api/read", "headers": {"content-type": HOW},
                                  "content": multipart([(f"f{i}", None, b"v") for i in range(50)])},
        "text_plain": {"route": "/api/predict", "content": b"hello",
                       "headers": {"content-type": "text/plain"}},
        "json_wrong_type": {"route": "/api/predict", "json": {"image": 5}},
        "json_a_list": {"route": "/api/read", "json": ["image"]},
        "json_not_base64": {"route": "/api/read", "json": {"image": "not base64 at all!"}},
    }


async def huge_declared_body(port: int, timeout: float) -> int:
    """Declare a 1 GB body, send 10 bytes: the server must answer 413 from the header alone."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(b"POST /api/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n0123456789")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        return int(line.split()[1])
    finally:
        writer.close()


async def streamed_body_over_limit(port: int, timeout: float) -> int:
    """Stream 6.25 MB in chunks, without a length: the server must answer 413 once it passes 5 MB.

    The answer is read while the body is still being sent: the server refuses without reading the
    rest and closes the connection, so a client that only reads after sending sees a reset.
    """
    reader, writer = await asyncio.open_connection(HOST, port)
    status = asyncio.ensure_future(asyncio.wait_for(reader.readline(), timeout))
    try:
        writer.write(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"\0" * 0x10000 + b"\r\n"
        with contextlib.suppress(ConnectionError):
            for _ in range(100):
                if status.done():
                    break
                writer.write(chunk)
                await writer.drain()
        return int((await status).split()[1])
    finally:
        writer.close()


def start_server(run_dir: Path, port: int, memory_gb: float) -> subprocess.Popen:
    limit = int(memory_gb * 2**30)

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return server_process.start(run_dir, port, preexec_fn=limit_memory)


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds or [0.0]) * 1000
    return {q: round(float(np.percentile(ms, p)), 1) for q, p in (("p50", 50), ("p99", 99), ("max", 100))}


async def hammer(args: argparse.Namespace, port: int) -> dict:
    kinds = requests()
    raw = {"huge_declared_body": huge_declared_body, "streamed_body_over_5mb": streamed_body_over_limit}
    names = [*kinds, *raw]
    statuses: dict[str, Counter] = defaultdict(Counter)
    latencies: dict[str, list[float]] = defaultdict(list)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits,
                                 timeout=args.timeout) as client:
        start = time.perf_counter()
        sent = 0

        async def send(name: str) -> str:
            if name in raw:
                return str(await raw[name](port, args.timeout))
            spec = dict(kinds[name])
            r = await client.post(spec.pop("route"), **spec)
            return str(r.status_code)

        async def client_loop() -> None:
            nonlocal sent
            while time.perf_counter() - start < args.seconds:
                name = names[sent % len(names)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    outcome = await send(name)
                except (httpx.TimeoutException, TimeoutError):
                    outcome = "timeout"
                except (httpx.TransportError, OSError, ValueError, IndexError) as e:
                    outcome = f"error {type(e).__name__}"
                latencies[name].append(time.perf_counter() - t0)
                statuses[name][outcome] += 1

        await asyncio.gather(*(client_loop() for _ in range(args.concurrency)))
        seconds = time.perf_counter() - start
    total: Counter = Counter()
    for counts in statuses.values():
        total.update(counts)
    every = [t for ts in latencies.values() for t in ts]
    return {
        "seconds": round(seconds, 1), "concurrency": args.concurrency, "requests": len(every),
        "status_codes": dict(sorted(total.items())), "latency_ms": percentiles(every),
        "kinds": {name: {"status_codes": dict(sorted(statuses[name].items())),
                         "latency_ms": percentiles(latencies[name])} for name in names},
    }


def stop(server: subprocess.Popen) -> bool:
    """SIGTERM, then SIGKILL after 30 s (a server still busy with runaway work may not stop);
    True if SIGTERM was enough."""
    server.terminate()
    try:
        server.wait(timeout=30)
        return True
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=30)
        return False


async def run(args: argparse.Namespace) -> dict:
    run_dir = runs.resolve_run_dir(args.run_dir)
    port = server_process.free_port()
    server = start_server(run_dir, port, args.server_memory_gb)
    try:
        await server_process.wait_ready(port, server, timeout=120)
        idle = server_process.peak_rss_mb(server.pid)
        result = await hammer(args, port)
        result["server"] = {"rss_mb_at_start": idle, "peak_rss_mb": server_process.peak_rss_mb(server.pid),
                            "alive_after": server.poll() is None}
        result["server"]["stopped_on_sigterm"] = stop(server)
    finally:
        if server.poll() is None:
            stop(server)
    return {"run_dir": str(run_dir), "cpus": os.cpu_count(), **result}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    # a reset is the client's side of a refusal sent while it was still sending (see
    # streamed_body_over_limit); a server error or an answer that never comes is a failure
    failed = {k for k in result["status_codes"] if k.startswith("5") or k == "timeout"}
    return 1 if failed or not result["server"]["alive_after"] else 0


if __name__ == "__main__":
    sys.exit(main())
