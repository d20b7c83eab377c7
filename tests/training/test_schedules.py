"""Learning rates per step: the digit runs' constant and one-cycle, fine-tuning's cosine, and
the line reader's torch one-cycle."""

import pytest
import torch

from digitnet.runs.config import TrainConfig
from digitnet.training import schedules


def test_constant_and_one_cycle():
    constant = TrainConfig(lr=0.01)
    assert {schedules.learning_rate(constant, s, 100) for s in range(100)} == {0.01}
    cycle = TrainConfig(lr=0.01, schedule="onecycle", warmup=0.2)
    lrs = [schedules.learning_rate(cycle, s, 100) for s in range(100)]
    assert max(lrs) == lrs[20] == 0.01  # the peak ends the warm-up
    assert lrs[0] == pytest.approx(0.001) and lrs[-1] < 0.001  # it starts and ends low
    assert all(a <= b for a, b in zip(lrs[:20], lrs[1:21], strict=True))
    assert all(a >= b for a, b in zip(lrs[20:-1], lrs[21:], strict=True))


def test_the_one_cycle_decay_is_the_cosine():
    """After the warm-up, one-cycle is fine-tuning's cosine over the remaining steps."""
    assert schedules.one_cycle(0.5, 30, 100, 0.2) == pytest.approx(schedules.cosine(0.5, 10, 80))
    assert schedules.cosine(0.5, 0, 120) == 0.5
    assert schedules.cosine(0.5, 120, 120) == pytest.approx(0.5 * schedules.FLOOR)


def test_the_line_readers_one_cycle_cycles_the_rate_and_beta1():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-3)
    schedule = schedules.line_one_cycle(optimizer, 3e-3, total_steps=20, warmup=0.25)
    lrs, betas = [], []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        betas.append(optimizer.param_groups[0]["betas"][0])
        optimizer.step()
        schedule.step()
    assert lrs[0] == pytest.approx(3e-3 / 25) and max(lrs) == pytest.approx(3e-3)
    assert lrs[-1] < lrs[0] / 100 and min(betas) == pytest.approx(0.85)
