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


def test_channels_last_on_every_cpu_and_for_bf16_on_cuda(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)  # AVX2 only: fp32 NHWC pays too
    assert devices.prefers_channels_last(torch.device("cpu"), "fp32")
    assert devices.prefers_channels_last(torch.device("cuda"), "bf16")
    assert not devices.prefers_channels_last(torch.device("cuda"), "fp32")


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


def test_to_channels_last_hands_the_pool_an_nhwc_gradient_and_keeps_every_gradient():
    from digitnet.models import TutorialCNN

    torch.manual_seed(0)
    plain = TutorialCNN(dropout_conv=0, dropout_dense=0)
    fast = TutorialCNN(dropout_conv=0, dropout_dense=0)
    fast.load_state_dict(plain.state_dict())
    plain = plain.to(memory_format=torch.channels_last)
    fast = devices.to_channels_last(fast)
    seen = []  # the gradient the pool's backward receives, after the helper's hook

    def record(_pool, _inputs, out):
        out.register_hook(seen.append)

    fast.pool.register_forward_hook(record)
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    for model in (plain, fast):
        torch.nn.functional.cross_entropy(model(x), y).backward()
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    for (name, a), b in zip(plain.named_parameters(), fast.parameters(), strict=True):
        assert b.is_contiguous(memory_format=torch.channels_last) or b.dim() != 4, name
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7, msg=name)
