"""What the network sees: feature maps are the first layer's real output, the pixel shares are
integrated gradients (they add up to the log-probability gained over a blank page), and the
JSON form carries the same numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from digitnet.errors import DigitnetError
from digitnet.inference import calibration
from digitnet.inference.explain import explain
from digitnet.models import ReaderNet, TutorialCNN
from digitnet.plots import figures
from digitnet.preprocess import input_tensor
from digitnet.training.config import NOT_A_DIGIT

DIGITS = tuple(str(d) for d in range(10))
READER_CLASSES = (*DIGITS, "not a digit")


def a_digit(seed: int = 0) -> np.ndarray:
    """uint8 (28, 28): a bright stroke on black with some grain, like a drawn digit."""
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 230
    image[6:9, 8:20] = 200
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def tutorial() -> nn.Module:
    torch.manual_seed(0)
    return TutorialCNN().eval()


@pytest.fixture
def reader() -> nn.Module:
    """A tiny ReaderNet (11 classes) with a random head: the real one starts at zero."""
    torch.manual_seed(0)
    model = ReaderNet(width=(4, 6, 8, 8))
    nn.init.normal_(model.head.weight, std=0.5)
    with torch.no_grad():  # batch norm with statistics that are not the identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_feature_maps_are_the_first_layers_output(tutorial, reader):
    image = a_digit()
    x = input_tensor(image)
    maps = explain(tutorial, image, DIGITS).feature_maps
    assert (maps.layer, maps.kinds) == ("conv1", ("Conv2d",))
    torch.testing.assert_close(torch.from_numpy(maps.values), tutorial.conv1(x)[0].detach())

    maps = explain(reader, image, READER_CLASSES).feature_maps
    # ReaderNet's first block is conv, batch norm, ReLU: the maps are after the ReLU
    assert maps.kinds == ("Conv2d", "BatchNorm2d", "ReLU")
    assert maps.layer == "features.0.0 → features.0.2"
    assert maps.values.shape == (4, 28, 28) and maps.values.min() >= 0
    torch.testing.assert_close(torch.from_numpy(maps.values), reader.features[0](x)[0].detach())


@pytest.mark.parametrize("which", ["tutorial", "reader"])
def test_pixel_shares_add_up_to_the_log_probability_gained(which, request):
    model = request.getfixturevalue(which)
    classes = DIGITS if which == "tutorial" else READER_CLASSES
    image = a_digit()
    e = explain(model, image, classes, steps=256)
    s = e.saliency[0]
    x = input_tensor(image)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.cat([torch.zeros_like(x), x])), dim=1)[:, s.target]
    assert s.total == pytest.approx(float(logp[1] - logp[0]), abs=1e-4)
    assert float(s.values.sum()) == pytest.approx(s.total, rel=0.03, abs=0.02)
    assert s.values.shape == (28, 28)
    assert np.all(s.values[image == 0] == 0)  # no ink, no share: the path starts at a blank page


def test_one_step_is_gradient_times_input(tutorial):
    image = a_digit()
    x = input_tensor(image).requires_grad_(True)
    e = explain(tutorial, image, DIGITS, steps=1)
    target = e.saliency[0].target
    torch.log_softmax(tutorial(x), dim=1)[0, target].backward()
    np.testing.assert_allclose(e.saliency[0].values, (x.grad * x)[0, 0].detach().numpy(), atol=1e-6)


def test_the_answer_decides_what_is_explained(reader):
    image = a_digit()
    probs = explain(reader, image, READER_CLASSES).probabilities
    digits_by_rank = np.argsort(-probs[:NOT_A_DIGIT])

    sure = explain(reader, image, READER_CLASSES, calibration.Verdict(reject=1.0, close=1.01))
    assert sure.answer.verdict == "digit"
    assert [s.target for s in sure.saliency] == [digits_by_rank[0]]

    # close=0: every runner-up is close enough, so the answer is "a or b?" and both are explained
    unsure = explain(reader, image, READER_CLASSES, calibration.Verdict(reject=1.0, close=0.0))
    assert unsure.answer.verdict == "unsure"
    assert [s.target for s in unsure.saliency] == list(digits_by_rank[:2])
    assert [s.name for s in unsure.saliency] == [READER_CLASSES[c] for c in digits_by_rank[:2]]
    assert unsure.saliency[1].probability == pytest.approx(float(probs[digits_by_rank[1]]))
    assert not np.allclose(unsure.saliency[0].values, unsure.saliency[1].values)

    rejected = explain(reader, image, READER_CLASSES, calibration.Verdict(reject=0.0))
    assert rejected.answer.verdict == "not_a_digit"
    assert [s.target for s in rejected.saliency] == [NOT_A_DIGIT]


def test_a_blank_page_has_no_pixel_shares(tutorial):
    e = explain(tutorial, np.zeros((28, 28), np.uint8), DIGITS)
    assert e.saliency[0].total == 0 and not e.saliency[0].values.any()


def test_the_model_keeps_its_mode_and_weights(tutorial):
    tutorial.train()
    before = {k: v.clone() for k, v in tutorial.state_dict().items()}
    explain(tutorial, a_digit(), DIGITS)
    assert tutorial.training
    assert all(p.grad is None for p in tutorial.parameters())
    for k, v in tutorial.state_dict().items():
        assert torch.equal(v, before[k])


def test_json_form_holds_the_same_numbers(reader):
    e = explain(reader, a_digit(), READER_CLASSES, calibration.Verdict(reject=1.0, close=0.0))
    data = json.loads(json.dumps(e.to_dict(maps=3)))
    assert data["answer"] == e.answer.to_dict() and data["classes"] == list(READER_CLASSES)
    assert np.array_equal(np.array(data["image"]), e.image)
    fm = data["feature_maps"]
    assert fm["channels"] == 4 and fm["shape"] == [3, 28, 28]
    restored = np.array(fm["values"]) * fm["scale"] / 255
    np.testing.assert_allclose(restored, e.feature_maps.values[:3], atol=fm["scale"] / 255)
    assert [s["class"] for s in data["saliency"]] == [s.target for s in e.saliency]
    for got, s in zip(data["saliency"], e.saliency, strict=True):
        values = np.array(got["values"])
        assert values.shape == (28, 28) and np.abs(values).max() == 255
        np.testing.assert_allclose(values * got["scale"] / 255, s.values, atol=got["scale"] / 255)
    assert len(json.dumps(data)) < 40_000  # small enough to send for every drawing


def test_bad_input_is_refused_in_one_line(tutorial):
    with pytest.raises(DigitnetError, match="28x28"):
        explain(tutorial, np.zeros((32, 32), np.uint8), DIGITS)
    with pytest.raises(DigitnetError, match="10 outputs but 11 class names"):
        explain(tutorial, a_digit(), READER_CLASSES)
    with pytest.raises(DigitnetError, match="no convolution"):
        explain(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), a_digit(), DIGITS)
    with pytest.raises(DigitnetError, match="steps"):
        explain(tutorial, a_digit(), DIGITS, steps=0)


@pytest.mark.parametrize("close", [1.01, 0.0])
def test_the_picture_renders(reader, close):
    e = explain(reader, a_digit(), READER_CLASSES, calibration.Verdict(reject=1.0, close=close))
    png = figures.to_png(figures.explanation(e, "tiny reader"), dpi=50)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
