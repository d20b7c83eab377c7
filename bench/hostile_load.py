"""Hostile-input load run of ``digitnet serve``: many clients sending only bad requests.

Starts the server (with a store in a temporary folder) in a subprocess on a free loopback port
(127.0.0.1 only) and lets ``--concurrency`` clients send, for ``--seconds``, a round-robin mix
of what a careless or malicious client sends: tiny odd images, long thin images, malformed
multipart bodies, a huge declared body, wrong content types and JSON shapes, garbage bytes,
an image over the pixel limit, a 4.8 MB padded "correction" (from this machine and from
another site's page), the 6320x6320 image of one 7 just under the pixel limit, and one good
photo as a control. Meanwhile ``--idle`` connections are held open sending nothing (each one
the server closes is opened again), and a fresh client asks /api/health twice a second.
Prints one JSON object: per kind and overall the status counts and latency percentiles,
transport failures, the health probe's latencies, the store's size, and the server's peak RSS
(VmHWM). A trusted server answers every one of them with a 4xx (or, for the control, the
large image and the first corrections, a 2xx), never a 5xx or a timeout, the probe in well
under a second, and stays small. A benchmark, not a test: figures depend on the machine and
its other load.

    python bench/hostile_load.py [RUN_DIR] [--seconds 30] [--concurrency 16] [--idle 200]
    python bench/hostile_load.py --read-cost   # one /api/read of the large image vs a photo
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
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import httpx
import numpy as np
import server as server_process  # bench/server.py, beside this script
from server import HOST

from digitnet import runs
from digitnet.benchmarks.runner import cpu_model

HOW = "multipart/form-data; boundary=b"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", type=Path, help="run to serve (default: the latest under runs/)")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to send (default 30)")
    p.add_argument("--concurrency", type=int, default=16, help="clients at once (default 16)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a client waits for an answer")
    p.add_argument("--server-memory-gb", type=float, default=8.0,
                   help="RLIMIT_DATA of the server, so a runaway server fails instead of the machine")
    p.add_argument("--idle", type=int, default=200, help="connections held open sending nothing (200)")
    p.add_argument("--read-cost", action="store_true",
                   help="instead: the time and memory of reading the 6320x6320 image and a 12 MP "
                        "photo, each in a fresh process, repeated --repeats times (medians)")
    p.add_argument("--repeats", type=int, default=5, help="for --read-cost (default 5)")
    p.add_argument("--idle-compare", action="store_true",
                   help="instead: /api/health while --idle connections sit open, on plain uvicorn "
                        "(as serve ran before: --limit-concurrency 64) and on uvicorn with the guard")
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


def handwritten_seven(height: int) -> np.ndarray:
    """MNIST's first test digit (a 7), dark on white, ``height`` px tall: uint8 (height, height)."""
    from digitnet.datasets import load

    digit = load("mnist").x_test[0]
    return 255 - cv2.resize(digit, (height, height), interpolation=cv2.INTER_CUBIC)


def large_seven() -> np.ndarray:
    """6320x6320 white paper (just under the 40 MP limit) with one 7 written 5000 px tall."""
    paper = np.full((6320, 6320), 255, np.uint8)
    paper[600:5600, 700:5700] = handwritten_seven(5000)
    return paper


def phone_photo() -> bytes:
    """A 4000x3000 JPEG (12 MP, as a phone takes them) of a 7 on unevenly lit paper."""
    light = 0.85 + 0.1 * np.linspace(0, 1, 4000)[None, :] - 0.08 * np.linspace(0, 1, 3000)[:, None]
    paper = np.full((3000, 4000), 255, np.uint8)
    paper[700:2300, 1200:2800] = handwritten_seven(1600)
    paper = (paper * light).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(paper, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


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

    padded = png(np.pad(np.full((80, 60), 30, np.uint8), 20, constant_values=230)) + b"\0" * 4_800_000
    correction = {"route": "/api/corrections", "files": {"file": ("x.png", padded, "image/png")},
                  "data": {"label": "7"}}
    cross_site = {**correction, "headers": {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}}

    return {
        "good_photo_read": upload(good),
        "padded_correction": correction,
        "padded_correction_cross_site": cross_site,
        "image_just_under_the_limit_read": upload(png(large_seven())),
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


def start_server(run_dir: Path, port: int, memory_gb: float, store: Path) -> subprocess.Popen:
    limit = int(memory_gb * 2**30)

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return server_process.start(run_dir, port, "--store", str(store), preexec_fn=limit_memory)


async def hold_idle(port: int, count: int, until: float) -> dict[str, int]:
    """Keep ``count`` connections open sending nothing until ``until``; open again each one the
    server closes. How many were opened, and how many the server closed."""
    opened = closed = 0

    async def one() -> None:
        nonlocal opened, closed
        while time.perf_counter() < until:
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            opened += 1
            try:
                left = until - time.perf_counter()
                if await asyncio.wait_for(reader.read(1), max(left, 0.01)) == b"":
                    closed += 1
            except (TimeoutError, OSError):
                pass
            finally:
                writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return {"held": count, "opened": opened, "closed_by_server": closed}


async def probe_health(port: int, until: float, timeout: float) -> list[float]:
    """/api/health from a fresh connection twice a second: what any other client waits."""
    seconds = []
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=timeout,
                                 limits=httpx.Limits(max_keepalive_connections=0)) as client:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            try:
                ok = (await client.get("/api/health")).status_code == 200
            except httpx.HTTPError:
                ok = False
            seconds.append(time.perf_counter() - t0 if ok else float("inf"))
            await asyncio.sleep(0.5)
    return seconds


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

        until = start + args.seconds
        _, idle, health, _ = await asyncio.gather(
            asyncio.sleep(0), hold_idle(port, args.idle, until), probe_health(port, until, args.timeout),
            asyncio.gather(*(client_loop() for _ in range(args.concurrency))))
        seconds = time.perf_counter() - start
    total: Counter = Counter()
    for counts in statuses.values():
        total.update(counts)
    every = [t for ts in latencies.values() for t in ts]
    return {
        "seconds": round(seconds, 1), "concurrency": args.concurrency, "requests": len(every),
        "status_codes": dict(sorted(total.items())), "latency_ms": percentiles(every),
        "idle_connections": idle,
        "health_while_idle_held": {"asked": len(health), "unanswered": sum(t == float("inf") for t in health),
                                   "latency_ms": percentiles([t for t in health if t != float("inf")])},
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
    with tempfile.TemporaryDirectory() as store:
        result = await serve_and_hammer(args, run_dir, port, Path(store))
        result["store_bytes"] = sum(p.stat().st_size for p in Path(store).iterdir())
    return result


async def serve_and_hammer(args: argparse.Namespace, run_dir: Path, port: int, store: Path) -> dict:
    server = start_server(run_dir, port, args.server_memory_gb, store)
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


# One read in a fresh process: "server" as /api/read does it now, "full_size" as it did before
# (the line found and read on the whole decoded image). The peak is measured from a reset
# high-water mark (/proc/self/clear_refs), so only the read's own memory counts.
READ_ONE = """
import sys, time
from pathlib import Path
from digitnet.runs.line_reading import LineReader
from digitnet.vision import imaging
from digitnet.vision.numbers import read_number
from digitnet.web import service
def kb(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines()
                if l.startswith(field))
reader = LineReader.load()
data = open(sys.argv[1], "rb").read()
read = {"server": lambda: service.read_image(data, "image", reader).text,
        "full_size": lambda: read_number(imaging.decode(data, "image"), reader).text}[sys.argv[2]]
if sys.argv[2] == "full_size":
    imaging.NUMBER_SIDE = 10**9  # the ink found on the whole decoded image, as before
Path("/proc/self/clear_refs").write_text("5")
before = kb("VmRSS:")
t0, c0 = time.perf_counter(), time.process_time()
text = read()
print(time.perf_counter() - t0, time.process_time() - c0, (kb("VmHWM:") - before) / 1024, text or "-")
"""


def read_cost(repeats: int) -> dict:
    """Median wall and CPU seconds, and the peak memory one read adds to a process that has
    loaded the line reader, for the large image and a phone photo, read as /api/read does now
    and at full size (as it did before)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        images = (("png_6320x6320_one_7", png(large_seven())), ("jpeg_4000x3000_photo", phone_photo()))
        for name, data in images:
            path = Path(tmp) / name
            path.write_bytes(data)
            for how in ("server", "full_size"):
                rows = [subprocess.run([sys.executable, "-c", READ_ONE, str(path), how], capture_output=True,
                                       text=True, check=True).stdout.split() for _ in range(repeats)]
                out[f"{name}_{how}"] = {
                    "bytes": len(data), "text": rows[0][3],
                    "wall_s": round(float(np.median([float(r[0]) for r in rows])), 3),
                    "cpu_s": round(float(np.median([float(r[1]) for r in rows])), 3),
                    "added_peak_rss_mb": round(float(np.median([float(r[2]) for r in rows])), 1)}
    return {"cpu": cpu_model(), "load_average": [round(v, 1) for v in os.getloadavg()], **out}


IDLE_SERVERS = {
    "uvicorn_limit_64": ["--limit-concurrency", "64", "--timeout-keep-alive", "5"],
    "uvicorn_with_guard": ["--limit-concurrency", "2000", "--timeout-keep-alive", "5",
                           "--http", "digitnet.web.guard:GuardedH11"],
}


async def idle_probe(port: int, idle: int, timeout: float) -> dict:
    """Open ``idle`` silent connections, then ask /api/health 10 times from fresh ones; 12 s
    later, count the silent connections the server has closed."""
    held = [await asyncio.open_connection(HOST, port) for _ in range(idle)]
    await asyncio.sleep(1.0)
    codes, seconds = Counter(), []
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=timeout,
                                 limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for _ in range(10):
            t0 = time.perf_counter()
            try:
                codes[str((await client.get("/api/health")).status_code)] += 1
            except httpx.HTTPError as e:
                codes[type(e).__name__] += 1
            seconds.append(time.perf_counter() - t0)
            await asyncio.sleep(0.2)
    await asyncio.sleep(12)
    closed = 0
    for reader, writer in held:
        with contextlib.suppress(TimeoutError, OSError):
            closed += await asyncio.wait_for(reader.read(1), 0.05) == b""
        writer.close()
    return {"health_status_codes": dict(codes), "health_latency_ms": percentiles(seconds),
            "idle_closed_by_server_after_13s": f"{closed} of {idle}"}


async def idle_compare(args: argparse.Namespace) -> dict:
    from digitnet.web.app import SETTINGS_VARIABLE, Settings

    run_dir = runs.resolve_run_dir(args.run_dir)
    env = {**os.environ, SETTINGS_VARIABLE: Settings(run_dir=run_dir.resolve()).to_json()}
    out = {"cpu": cpu_model(), "idle": args.idle}
    for name, options in IDLE_SERVERS.items():
        port = server_process.free_port()
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "digitnet.web.app:from_environment",
                                   "--factory", "--host", HOST, "--port", str(port), "--log-level",
                                   "error", *options], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            await server_process.wait_ready(port, server, timeout=120)
            out[name] = await idle_probe(port, args.idle, args.timeout)
        finally:
            stop(server)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.idle_compare:
        print(json.dumps(asyncio.run(idle_compare(args)), indent=2))
        return 0
    if args.read_cost:
        print(json.dumps(read_cost(args.repeats), indent=2))
        return 0
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    # a reset is the client's side of a refusal sent while it was still sending (see
    # streamed_body_over_limit); a server error or an answer that never comes is a failure
    failed = {k for k in result["status_codes"] if k.startswith("5") or k == "timeout"}
    return 1 if failed or not result["server"]["alive_after"] else 0


if __name__ == "__main__":
    sys.exit(main())
