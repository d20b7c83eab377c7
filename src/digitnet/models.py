"""Network architectures: plain ``nn.Module``s that map images to class logits, no file access.

Inputs are float32 images in [0, 1], channels-first: (N, 1, 28, 28). Every model returns
logits (N, 10); softmax is applied at inference (``probabilities``), while training uses the
equivalent and numerically safer log-softmax inside ``F.cross_entropy``. ``LineNet`` is the
exception: it reads a whole line of digits, (N, 1, 32, W) -> (N, W / frame, 11), with CTC loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from digitnet.errors import DigitnetError


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper random mask on CPU, the same distribution.

    PyTorch draws a CPU dropout mask one Bernoulli sample at a time: about 9 ns per element on
    an AMD EPYC, 1.35 ms of a 14 ms TutorialCNN step at batch 32 (bf16, one thread). Here every
    element gets one random byte, eight per 64-bit draw (0.08 ms), and is kept when its byte is
    at least 256·p: exactly probability 1 - p when 256·p is a whole number (0.25 and 0.5, the
    tutorial's rates). Survivors are scaled by 1 / (1 - p) with the same two multiplications as
    ``nn.Dropout``. Other rates, other devices, ``inplace`` and evaluation take
    ``nn.Dropout``'s own path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        threshold = self.p * 256
        if (not self.training or self.inplace or x.device.type != "cpu" or not 0 < self.p < 1
                or threshold != int(threshold) or not x.is_floating_point()):
            return super().forward(x)
        # The mask in x's own memory layout (NCHW or channels-last), so x * mask runs as one
        # contiguous loop. Bytes 0..255 are exact in bf16 and fp32, so the comparison is too.
        layout = torch.empty_like(x, dtype=torch.uint8).stride()
        words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64).random_(-2**63, None)
        random_bytes = words.view(torch.uint8)[: x.numel()].as_strided(x.shape, layout)
        keep = random_bytes.to(x.dtype).ge_(int(threshold))  # 1 kept, 0 dropped
        return x.mul(keep).mul_(1 / (1 - self.p))


class TutorialCNN(nn.Module):
    """The Keras beginner tutorial's network, 600,810 parameters.

    Dropout rates are the fraction of units *dropped* (Keras and PyTorch agree on that).
    """

    def __init__(self, num_classes: int = 10, dropout_conv: float = 0.25,
                 dropout_dense: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)  # (N, 32, 26, 26)
        self.conv2 = nn.Conv2d(32, 32, 3)  # (N, 32, 24, 24)
        self.pool = nn.MaxPool2d(2)  # (N, 32, 12, 12)
        self.dropout1 = Dropout(dropout_conv)
        self.flatten = nn.Flatten()  # (N, 4608)
        self.dense1 = nn.Linear(32 * 12 * 12, 128)  # (N, 128)
        self.dropout2 = Dropout(dropout_dense)
        self.dense2 = nn.Linear(128, num_classes)  # (N, 10) logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(self.pool(x))
        x = F.relu(self.dense1(self.flatten(x)))
        return self.dense2(self.dropout2(x))


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU: the building block of the small fast nets."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


def conv_pool_bn(c_in: int, c_out: int, pool: nn.Module) -> nn.Sequential:
    """3x3 convolution, then ``pool``, then batch norm and ReLU on the pooled map: conv_bn
    followed by the pool, reordered so that normalisation and activation (most of a small net's
    CPU time) see a quarter of the positions."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), pool, nn.BatchNorm2d(c_out), nn.ReLU()
    )


class SpeedrunNet(nn.Module):
    """A small BatchNorm convnet that reaches 99% on MNIST in about one pass over the data."""

    def __init__(self, num_classes: int = 10, width: tuple[int, int, int] = (24, 48, 64),
                 grid: bool = False, pool_first: bool = False) -> None:
        super().__init__()
        w1, w2, w3 = width
        # grid: the head sees where each feature is, on a 3x3 grid, rather than only its
        # strongest response anywhere; 9x the head's inputs for almost no compute.
        last_pool, cells = (nn.MaxPool2d(2), 9) if grid else (nn.AdaptiveMaxPool2d(1), 1)
        if pool_first:  # pool right after each convolution (see conv_pool_bn)
            self.features = nn.Sequential(
                conv_pool_bn(1, w1, nn.MaxPool2d(2)),  # (N, w1, 14, 14)
                conv_pool_bn(w1, w2, nn.MaxPool2d(2)),  # (N, w2, 7, 7)
                conv_pool_bn(w2, w3, last_pool),  # (N, w3, 3, 3) with grid, else (N, w3, 1, 1)
                nn.Flatten(),  # (N, w3 * cells)
            )
        else:
            self.features = nn.Sequential(
                conv_bn(1, w1), nn.MaxPool2d(2),  # (N, w1, 14, 14)
                conv_bn(w1, w2), nn.MaxPool2d(2),  # (N, w2, 7, 7)
                conv_bn(w2, w3), last_pool,  # (N, w3, 3, 3) with grid, else (N, w3, 1, 1)
                nn.Flatten(),  # (N, w3 * cells)
            )
        self.head = nn.Linear(w3 * cells, num_classes)  # (N, 10) logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Residual(nn.Module):
    """Two 3x3 convolutions with a skip connection, ReLU after the sum (as in ResNet): more
    depth at the same width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )
        # The block starts as the identity (last BatchNorm scale 0): stable at a high learning
        # rate. No ReLU may follow that BatchNorm inside the body: ReLU's gradient at exactly 0
        # is 0, and the block would stay switched off for good.
        nn.init.zeros_(self.body[2].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H, W)
        return F.relu(x + self.body(x))


class ReaderNet(nn.Module):
    """The reader: a small residual BatchNorm CNN (about 0.18 M parameters) that reads one
    MNIST-style digit or answers class 10, "not a digit" (``num_classes=11``).

    Most of the work is done at 14x14 and 7x7, which keeps training within minutes on 2 cores.
    """

    def __init__(self, num_classes: int = 11, width: tuple[int, int, int, int] = (24, 32, 64, 128),
                 ) -> None:
        super().__init__()
        w1, w2, w3, w4 = width
        self.features = nn.Sequential(
            conv_bn(1, w1),  # (N, w1, 28, 28)
            conv_bn(w1, w2), nn.MaxPool2d(2),  # (N, w2, 14, 14)
            conv_bn(w2, w3), nn.MaxPool2d(2),  # (N, w3, 7, 7)
            Residual(w3),  # (N, w3, 7, 7)
            conv_bn(w3, w4),  # (N, w4, 7, 7)
        )
        self.head = nn.Linear(2 * w4, num_classes)  # (N, classes) logits
        nn.init.zeros_(self.head.weight)  # every class equally likely at the start: no early spikes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (N, w4, 7, 7)
        # Mean and max pooling: the mean sees the whole shape, the max a stroke anywhere.
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)  # (N, 2 * w4)
        return self.head(pooled)


class LineNet(nn.Module):
    """Reads a whole line of digits without cutting it first: a convolutional-recurrent network
    trained with CTC loss. Input: one line of ink (N, 1, 32, W), W a multiple of 4. Output:
    logits (N, W / frame, 11), one distribution per ``frame``-pixel column of the line over the
    ten digits and class 10, "no digit here" (CTC's blank, also what stray marks and underlines
    are). ``frame`` 2 gives narrow digits that touch twice as many columns to be told apart in;
    the weights' shapes do not depend on it.

    The convolutions see about a digit's width; the bidirectional LSTM lets each column weigh
    its neighbours, which is what separates two overlapping digits. Not a classifier of 28x28
    digits, so not in ``ARCHITECTURES``.
    """

    BLANK = 10
    FRAMES = (2, 4)  # the input columns per output column it can give

    def __init__(self, width: tuple[int, int, int, int] = (32, 64, 96, 96), hidden: int = 96,
                 frame: int = 4) -> None:
        super().__init__()
        if frame not in self.FRAMES:
            raise ValueError(f"frame must be one of {self.FRAMES} input columns per output column, "
                             f"got {frame}")
        self.frame = frame
        w1, w2, w3, w4 = width
        self.features = nn.Sequential(
            conv_bn(1, w1), nn.MaxPool2d(2),  # (N, w1, 16, W/2)
            conv_bn(w1, w2), nn.MaxPool2d((2, frame // 2)),  # (N, w2, 8, W/frame)
            conv_bn(w2, w3), conv_bn(w3, w3), nn.MaxPool2d((2, 1)),  # (N, w3, 4, W/frame)
            conv_bn(w3, w4), nn.MaxPool2d((2, 1)),  # (N, w4, 2, W/frame)
        )
        self.rnn = nn.LSTM(2 * w4, hidden, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden, self.BLANK + 1)  # (N, T, 11) logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (N, C, 2, T)
        n, c, h, t = f.shape
        f = f.permute(0, 3, 1, 2).reshape(n, t, c * h)  # (N, T, 2C): each column's features
        return self.head(self.rnn(f)[0])  # (N, T, 11)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "tutorial_cnn": TutorialCNN,
    "speedrun_net": SpeedrunNet,
    "reader_net": ReaderNet,
}


def build_model(name: str, **kwargs) -> nn.Module:
    if name not in ARCHITECTURES:
        raise DigitnetError(f"unknown model {name!r}; choose one of: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](**kwargs)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """The softmax the tutorial's last layer applies: (N, 10) logits -> (N, 10) probabilities."""
    return torch.softmax(logits.float(), dim=-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_summary(model: nn.Module, input_shape=(1, 28, 28)) -> list[tuple[str, str, tuple, int]]:
    """(name, type, output shape, parameters) of each leaf layer, found by running one image."""
    rows: list[tuple[str, str, tuple, int]] = []
    hooks = []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            def hook(mod, _inp, out, name=name):
                params = sum(p.numel() for p in mod.parameters(recurse=False))
                rows.append((name, type(mod).__name__, (None, *out.shape[1:]), params))
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows
