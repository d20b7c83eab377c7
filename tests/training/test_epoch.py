"""The training loop's pieces: data order, one epoch."""

import pytest
import torch

from digitnet.models import TutorialCNN
from digitnet.runs.config import TrainConfig
from digitnet.training import devices
from digitnet.training.epoch import epoch_order, make_optimizer, train_one_epoch


def test_epoch_order_is_a_function_of_seed_and_epoch():
    a = epoch_order(1000, seed=3, epoch=1)
    assert torch.equal(a, epoch_order(1000, seed=3, epoch=1))
    assert not torch.equal(a, epoch_order(1000, seed=3, epoch=2))
    assert sorted(a.tolist()) == list(range(1000))


def test_one_epoch_learns_and_returns_metrics(mnist):
    torch.manual_seed(0)
    x = torch.from_numpy(mnist.x_train[:2000]).float().div(255).unsqueeze(1)
    y = torch.from_numpy(mnist.y_train[:2000]).long()
    model = TutorialCNN()
    optimizer = make_optimizer(TrainConfig(), model.parameters(), torch.device("cpu"))
    result = train_one_epoch(model, optimizer, x, y, order=epoch_order(2000, 0, 0), batch_size=32)
    assert result.steps == 63 and result.images == 2000 and not result.stopped
    assert result.loss < 1.5 and result.accuracy > 0.55


def test_after_step_can_stop_and_start_step_resumes(mnist):
    x = torch.from_numpy(mnist.x_train[:640]).float().div(255).unsqueeze(1)
    y = torch.from_numpy(mnist.y_train[:640]).long()
    model = TutorialCNN()
    optimizer = make_optimizer(TrainConfig(), model.parameters(), torch.device("cpu"))
    order = epoch_order(640, 0, 0)
    first = train_one_epoch(model, optimizer, x, y, order=order, batch_size=64,
                            after_step=lambda done, stats: done == 4)
    assert first.stopped and first.steps == 4 and first.images == 256
    rest = train_one_epoch(model, optimizer, x, y, order=order, batch_size=64, start_step=4)
    assert not rest.stopped and rest.steps == 6 and rest.images == 384


def plain_and_fast(dropout: tuple[float, float]) -> tuple[TutorialCNN, TutorialCNN]:
    """The same TutorialCNN twice in channels-last: as stock PyTorch builds it (nn.Dropout,
    no gradient hooks), and as digitnet trains it (byte-mask dropout, NHWC pool gradients)."""
    torch.manual_seed(0)
    fast = TutorialCNN(dropout_conv=dropout[0], dropout_dense=dropout[1])
    plain = TutorialCNN(dropout_conv=dropout[0], dropout_dense=dropout[1])
    plain.load_state_dict(fast.state_dict())
    plain.dropout1, plain.dropout2 = torch.nn.Dropout(dropout[0]), torch.nn.Dropout(dropout[1])
    return plain.to(memory_format=torch.channels_last), devices.to_channels_last(fast)


def loss_trace(model, x, y, epochs: int, autocast=None, block: int = 10) -> list[float]:
    """The mean loss of each block of ``block`` steps (batch 32) over ``epochs`` epochs."""
    optimizer = make_optimizer(TrainConfig(), model.parameters(), torch.device("cpu"))
    torch.manual_seed(1)
    per_step = []
    for epoch in range(epochs):
        sums = [0.0]  # the epoch's running loss sum after each step

        def record(done, stats, sums=sums):
            sums.append(stats.loss_sum.item())
            return False

        train_one_epoch(model, optimizer, x, y, order=epoch_order(len(x), 0, epoch), batch_size=32,
                        autocast=autocast, after_step=record)
        per_step += torch.tensor(sums).diff().div(32).tolist()
    return torch.tensor(per_step).view(-1, block).mean(1).tolist()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fast_step_follows_the_plain_loss_trajectory(mnist, precision):
    # 20 steps in fp32, 10 in bf16: where bf16 is emulated (AVX2) each of its steps takes 0.3 s.
    n = 640 if precision == "fp32" else 320
    x = torch.from_numpy(mnist.x_train[:n]).float().div(255).unsqueeze(1)
    y = torch.from_numpy(mnist.y_train[:n]).long()
    autocast = (lambda: devices.autocast("bf16", torch.device("cpu"))) if precision == "bf16" else None
    # Without dropout the two differ only in memory layouts: the same trajectory, in blocks of 5 steps.
    plain, fast = plain_and_fast((0.0, 0.0))
    expected, got = (loss_trace(m, x, y, 1, autocast, block=5) for m in (plain, fast))
    torch.testing.assert_close(got, expected, rtol=1e-4 if precision == "fp32" else 2e-2, atol=0)


def test_with_dropout_the_masks_differ_not_the_learning(mnist):
    # After 3 epochs (60 steps) both are at the same loss, well below where they started. In
    # fp32 only: the masks do not depend on the precision (test_models checks them in bf16),
    # and where bf16 is emulated (AVX2) these 120 steps took about 44 s.
    x = torch.from_numpy(mnist.x_train[:640]).float().div(255).unsqueeze(1)
    y = torch.from_numpy(mnist.y_train[:640]).long()
    plain, fast = plain_and_fast((0.25, 0.5))
    expected, got = loss_trace(plain, x, y, 3), loss_trace(fast, x, y, 3)
    assert got[-1] < 0.5 * got[0] and expected[-1] < 0.5 * expected[0]
    assert abs(sum(got[-4:]) - sum(expected[-4:])) / 4 < 0.15
