"""Timing inference: throughput at a batch size and single-image latency, medians of repeats.

Used by ``bench/inference.py`` and ``digitnet bench``; ``predict`` is any function taking
uint8 images (N, 28, 28) and returning (N, 10) probabilities, e.g. ``Predictor.probabilities``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def throughput(predict: Predict, images: np.ndarray, repeats: int = 3) -> float:
    """Images per second for ``predict(images)`` in one call, median of ``repeats`` (after a warm-up)."""
    predict(images)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(images)
        rates.append(len(images) / (time.perf_counter() - start))
    return statistics.median(rates)


def latency(predict: Predict, images: np.ndarray, calls: int = 200, repeats: int = 3) -> dict[str, float]:
    """Milliseconds for one image per call: p50 and p99 over ``calls`` calls, median of ``repeats``."""
    for image in images[:10]:
        predict(image[None])
    p50, p99 = [], []
    for _ in range(repeats):
        ms = []
        for i in range(calls):
            one = images[i % len(images)][None]  # (1, 28, 28)
            start = time.perf_counter()
            predict(one)
            ms.append((time.perf_counter() - start) * 1e3)
        p50.append(float(np.percentile(ms, 50)))
        p99.append(float(np.percentile(ms, 99)))
    return {"p50_ms": statistics.median(p50), "p99_ms": statistics.median(p99)}


def measure(predict: Predict, images: np.ndarray, batch: int = 1000, calls: int = 200,
            repeats: int = 3) -> dict[str, float]:
    """Throughput at ``batch`` images and single-image latency, as one JSON-ready dict."""
    return {"images_per_s": throughput(predict, images[:batch], repeats),
            "batch": min(batch, len(images)), **latency(predict, images, calls, repeats)}
