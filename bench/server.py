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
          preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
    """``digitnet serve --run RUN_DIR`` on HOST:port with extra ``options``."""
    cmd = [sys.executable, "-m", "digitnet", "serve", "--run", str(run_dir), "--host", HOST,
           "--port", str(port), *options]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=os.environ.copy(),
                            preexec_fn=preexec_fn)


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
