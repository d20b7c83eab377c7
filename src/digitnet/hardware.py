"""Choosing the device, numeric precision and thread count for a run."""

from __future__ import annotations

import contextlib
import functools
import os
import random
from pathlib import Path

import numpy as np
import torch

from digitnet.errors import DigitnetError


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX); emulated bf16 is slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DigitnetError("--device cuda: no CUDA GPU is visible; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DigitnetError("--device mps: Apple's Metal backend is unavailable; use --device cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise DigitnetError(f"--device must be auto, cpu, cuda or mps, got {name!r}")
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' becomes 'bf16' where the hardware has fast bf16, else 'fp32'."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass: matmuls and convolutions in bf16, the rest fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def idle_cores(cores: int | None = None, load: float | None = None) -> int:
    """Cores not busy with other work: all cores minus the 1-minute load average, at least 1.

    Why this is the default thread count: torch's OpenMP threads meet at a barrier at the end of
    every operation, so one thread descheduled by another process stalls all the others. On a
    2-core machine with other jobs running, the tutorial's step took 5-12x longer with 2 threads
    than with 1 (same losses: the count only reorders float sums). On an idle machine this is
    one thread per core, torch's own default.
    """
    cores = cores or os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None else load
    return max(1, min(cores, cores - int(load)))


def configure_threads(threads: int, deterministic: bool) -> int:
    """Set torch's intra-op threads (0 = one per idle core) and return the count used.

    Deterministic runs pin the count to the cores, since float sums depend on it.
    """
    if threads == 0:
        if deterministic:
            threads = 1 if "LOCAL_RANK" in os.environ else (os.cpu_count() or 1)
        elif "LOCAL_RANK" in os.environ:
            threads = max(1, idle_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        else:
            threads = idle_cores()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return threads
