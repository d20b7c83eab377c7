"""How many threads torch computes on, for one block of code: inference on a few images runs
on one thread, training on as many as its config asks for, and the count is restored after;
and the threads a server answers on (``serving_threads``)."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def torch_threads(n: int):
    """Run torch ops on ``n`` intra-op threads inside the block, then restore the count."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def serving_threads(torch_n: int):
    """Inside the block, torch on ``torch_n`` threads and OpenCV and numpy's BLAS on one each,
    as a server runs: requests run in parallel, so more threads per image only wait. On an
    image of a few hundred pixels a side OpenCV's threads cost more in waiting for each other
    than they save; OpenBLAS's threads spin after each of preprocessing's small matrix
    products, taking the other core from the next request (a photo cost 19.3 ms of CPU in
    process for 11.1 ms of wall time, 10.6 ms with one BLAS thread; AMD EPYC, AVX2)."""
    import cv2
    from threadpoolctl import threadpool_limits

    cv2_before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with torch_threads(torch_n), threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        cv2.setNumThreads(cv2_before)
