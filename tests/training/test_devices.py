"""Choosing precision, device and threads."""

import pytest
import torch

from digitnet.errors import DigitnetError
from digitnet.training import devices


def test_auto_precision_follows_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert devices.resolve_precision("auto", cpu) == "fp32"  # emulated bf16 is slower than fp32
    assert devices.resolve_precision("bf16", cpu) == "bf16"  # an explicit choice is kept


def test_unknown_or_missing_device_is_one_clear_error():
    with pytest.raises(DigitnetError, match="auto, cpu, cuda or mps"):
        devices.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DigitnetError, match="no CUDA GPU"):
            devices.resolve_device("cuda")


def test_configure_threads_sets_and_reports_the_count():
    before = torch.get_num_threads()
    try:
        assert devices.configure_threads(1, deterministic=False) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(False)
