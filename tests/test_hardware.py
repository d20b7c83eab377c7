"""The default thread count: one per core that other work leaves idle, at least one."""

from __future__ import annotations

from digitnet.hardware import idle_cores


def test_idle_cores():
    assert idle_cores(2, 0.3) == 2  # quiet machine: torch's usual one thread per core
    assert idle_cores(2, 1.5) == 1
    assert idle_cores(2, 14.0) == 1  # never zero
    assert idle_cores(8, 3.2) == 5
