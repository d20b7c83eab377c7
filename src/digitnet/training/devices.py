"""Where and how a run computes: the device, numeric precision, memory format and threads."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch
from torch import nn

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


def prefers_channels_last(device: torch.device, precision: str) -> bool:
    """NHWC where it was measured faster: bf16 on CUDA tensor cores, and every CPU measured.

    oneDNN's NHWC convolutions beat its NCHW ones in fp32 and bf16 alike. A batch-32 step of
    the tutorial model took 11.5 ms instead of 13.8 in fp32 and 6.9 instead of 8.7 in bf16
    (Intel Xeon with AMX, 2 cores), and 13.7 ms instead of 16.0 in fp32 on an AMD EPYC with AVX2
    only (2 threads; the input gradient of conv2 alone 5.3 ms instead of 9.5 on one thread,
    and NCHW max-pooling 2.2 ms instead of 0.3). Medians of interleaved blocks."""
    if device.type == "cuda":
        return precision == "bf16"
    return device.type == "cpu"


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` in NHWC memory format, with the gradient reaching each max-pool made NHWC too.

    A Flatten after a pool hands the gradient back as an NCHW view. PyTorch's max-pool backward
    then copies its NHWC input to NCHW to work there: for TutorialCNN's pool at batch 32 in
    bf16 that took 0.96 ms, against 0.31 ms plus 0.05 ms to turn the gradient NHWC first (AMD
    EPYC, one thread). Values are unchanged: the backward only routes each gradient to its
    maximum. Where the gradient already is NHWC, turning it is free.
    """
    model = model.to(memory_format=torch.channels_last)

    def gradient_channels_last(_pool: nn.Module, _inputs, output: torch.Tensor) -> None:
        if output.requires_grad and output.dim() == 4:
            output.register_hook(lambda grad: grad.contiguous(memory_format=torch.channels_last))

    for module in model.modules():
        if isinstance(module, nn.MaxPool2d):
            module.register_forward_hook(gradient_channels_last)
    return model


def configure_threads(threads: int, deterministic: bool) -> int:
    """Set torch's intra-op threads and (if asked) deterministic kernels; return the thread count.

    Deterministic runs pin the count (one per process under torchrun, else one per core), since
    how a sum is split over threads changes its last bits. TF32 is switched off there so fp32
    means fp32 on GPUs too.
    """
    if deterministic and threads == 0:
        threads = 1 if "LOCAL_RANK" in os.environ else (os.cpu_count() or 1)
    if threads:
        torch.set_num_threads(threads)
    if deterministic or torch.are_deterministic_algorithms_enabled():
        # Only when asked for or to undo it: even to say False when nothing was switched on,
        # the call imports much of torch._dynamo (4 s alone; skipping it took 2.4 s off a
        # 500-image 'digitnet train' of 13 s, AMD EPYC, AVX2).
        torch.use_deterministic_algorithms(deterministic, warn_only=False)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.get_num_threads()
