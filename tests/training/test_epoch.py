"""The training loop's pieces: data order, learning rate, one epoch."""

import torch

from digitnet.models import TutorialCNN
from digitnet.training.config import TrainConfig
from digitnet.training.epoch import epoch_order, learning_rate, make_optimizer, train_one_epoch


def test_epoch_order_is_a_function_of_seed_and_epoch():
    a = epoch_order(1000, seed=3, epoch=1)
    assert torch.equal(a, epoch_order(1000, seed=3, epoch=1))
    assert not torch.equal(a, epoch_order(1000, seed=3, epoch=2))
    assert sorted(a.tolist()) == list(range(1000))


def test_learning_rate_schedules():
    constant = TrainConfig(lr=0.01)
    assert {learning_rate(constant, s, 100) for s in range(100)} == {0.01}
    cycle = TrainConfig(lr=0.01, schedule="onecycle", warmup=0.2)
    lrs = [learning_rate(cycle, s, 100) for s in range(100)]
    assert max(lrs) == lrs[20] == 0.01  # the peak ends the warm-up
    assert lrs[0] < 0.002 and lrs[-1] < 0.001  # it starts and ends low
    assert all(a <= b for a, b in zip(lrs[:20], lrs[1:21], strict=True))


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
