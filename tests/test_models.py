"""Tutorial step 5: the network's layers, output shapes and parameter count."""

import pytest
import torch

from digitnet.models import (
    ARCHITECTURES,
    Dropout,
    TutorialCNN,
    build_model,
    count_parameters,
    layer_summary,
    probabilities,
)


def test_tutorial_cnn_has_600810_parameters():
    assert count_parameters(TutorialCNN()) == 600_810


def test_each_layer_output_shape():
    rows = layer_summary(TutorialCNN())
    assert [(name, shape, params) for name, _, shape, params in rows] == [
        ("conv1", (None, 32, 26, 26), 320),
        ("conv2", (None, 32, 24, 24), 9_248),
        ("pool", (None, 32, 12, 12), 0),
        ("dropout1", (None, 32, 12, 12), 0),
        ("flatten", (None, 4608), 0),
        ("dense1", (None, 128), 589_952),
        ("dropout2", (None, 128), 0),
        ("dense2", (None, 10), 1_290),
    ]


def test_dropout_rate_is_the_fraction_dropped():
    model = TutorialCNN().train()
    x = torch.ones(200, 32, 12, 12)
    dropped = (model.dropout1(x) == 0).float().mean().item()
    assert abs(dropped - 0.25) < 0.01
    assert abs((model.dropout2(torch.ones(2000, 128)) == 0).float().mean().item() - 0.5) < 0.01


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_byte_mask_dropout_drops_each_unit_independently_with_probability_p(dtype, channels_last):
    torch.manual_seed(0)
    x = torch.rand(64, 32, 16, 16).add_(0.5).to(dtype)  # no zeros of its own
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = Dropout(0.25).train()(x)
    kept = out != 0
    # Every byte of each 64-bit draw is used: a byte lane that were not uniform (a signed
    # draw's top byte) would drop 50% of its units instead of 25%.
    lanes = kept.permute(0, 2, 3, 1).reshape(-1, 8) if channels_last else kept.reshape(-1, 8)
    assert torch.allclose(1 - lanes.float().mean(0), torch.full((8,), 0.25), atol=0.01)
    # Survivors are scaled by 1 / (1 - p) with nn.Dropout's arithmetic, in the input's layout.
    assert torch.equal(out[kept], x[kept].mul(1).mul_(1 / 0.75))
    assert out.dtype == dtype and out.stride() == x.stride()
    x.requires_grad_(True)
    out = Dropout(0.25).train()(x)
    out.backward(torch.ones_like(out))
    assert torch.equal(x.grad, (out != 0).to(dtype).mul_(1 / 0.75))


def test_dropout_takes_torch_path_for_other_rates_and_in_evaluation():
    x = torch.rand(4, 32, 12, 12) + 0.5
    torch.manual_seed(3)
    expected = torch.nn.Dropout(0.1).train()(x)
    torch.manual_seed(3)
    assert torch.equal(Dropout(0.1).train()(x), expected)  # 25.6 / 256 is not whole
    assert torch.equal(Dropout(0.25).eval()(x), x)


def test_softmax_at_inference_sums_to_one():
    model = build_model("tutorial_cnn").eval()
    p = probabilities(model(torch.rand(5, 1, 28, 28)))
    assert p.shape == (5, 10)
    torch.testing.assert_close(p.sum(1), torch.ones(5))


@pytest.mark.parametrize("pool_first", [False, True])
@pytest.mark.parametrize("grid, head_inputs", [(False, 64), (True, 64 * 9)])
def test_speedrun_net_shapes(grid, head_inputs, pool_first):
    model = build_model("speedrun_net", width=(16, 32, 64), grid=grid, pool_first=pool_first)
    assert model.features(torch.rand(3, 1, 28, 28)).shape == (3, head_inputs)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_weight_learns(name):
    """After a few steps every parameter gets a gradient: no block is switched off for good
    (a zero-initialised BatchNorm followed by a ReLU would be)."""
    torch.manual_seed(0)
    model = build_model(name)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent
