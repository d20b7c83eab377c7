"""The one verdict fitting of a digit model: the temperature it records is the one it folds
into the model, and a refit's temperature is the whole of what was folded in."""

import pytest
import torch
from torch import nn

from digitnet.evaluate import predict_logits
from digitnet.training.calibrate import fit_verdict, on_top


def overconfident(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A linear 11-class model whose logits are 4x too large for its 70% accuracy, and its
    validation images (N, 1, 28, 28) and labels (N,)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 11, (600,), generator=g)
    x = torch.zeros(600, 1, 28, 28)
    wrong = torch.rand(600, generator=g) < 0.3
    shown = torch.where(wrong, (y + 1) % 11, y)
    x.view(600, -1)[torch.arange(600), shown] = 1.0  # one lit pixel per class
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 11))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[torch.arange(11), torch.arange(11)] = 8.0
        model[1].bias.zero_()
    return model, x, y


def test_fit_verdict_folds_the_temperature_it_records():
    model, x, y = overconfident()
    before = predict_logits(model, x)
    record = fit_verdict(model, before, y)
    assert record["temperature"] > 1.5  # it was overconfident
    assert record["val_ece_after"] < record["val_ece_before"]
    assert torch.allclose(predict_logits(model, x), before / record["temperature"], atol=1e-5)


def test_a_refit_records_the_product_of_both_temperatures():
    model, x, y = overconfident()
    first = fit_verdict(model, predict_logits(model, x), y)
    again = on_top(fit_verdict(model, predict_logits(model, x), y), first)
    assert again["temperature"] == pytest.approx(first["temperature"], rel=0.05)  # the same model
    assert set(again) == set(first)
