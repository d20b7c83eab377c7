"""A `digitnet serve` process for the load benchmarks, on loopback only: a free port, the
server started with the options a benchmark needs, and a wait until it answers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

HOST = "127.0.0.1"  # loopback only: the benchmarks never send traffic anywhere else


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start(run_dir: Path, port: int, *options: str, stderr=subprocess.DEVNULL,
          preexec_fn: Callable[[], None] | None = None, src: Path | None = None) -> subprocess.Popen:
    """``digitnet serve --run RUN_DIR`` on HOST:port with extra ``options``; with ``src``, the
    digitnet package found there (another checkout's ``src/``, to compare versions)."""
    cmd = [sys.executable, "-m", "digitnet", "serve", "--run", str(run_dir), "--host", HOST,
           "--port", str(port), *options]
    env = os.environ.copy()
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=env, preexec_fn=preexec_fn)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc): a server's supervisor and its workers."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after the state field
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def peak_rss_mb(pid: int) -> float:
    """The sum of the peak resident memory (VmHWM) of ``pid`` and its descendants, in MB."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return round(total / 1024, 1)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and its living descendants."""
    ticks = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


async def wait_ready(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    """Return once /api/health answers 200; SystemExit if the server stops or never answers."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}") as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                why = server.stderr.read().decode().strip() if server.stderr else "see its log"
                raise SystemExit(f"the server stopped before it answered /api/health: {why}")
            try:
                if (await client.get("/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"the server did not answer /api/health within {timeout:.0f} s")
