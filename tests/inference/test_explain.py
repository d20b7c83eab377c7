"""What the network sees: feature maps are the first layer's real output, the pixel shares are
occlusion (each pixel's mean log-odds drop when the squares covering it are blanked) or
integrated gradients (they add up to the log-odds gained over a blank page), and the JSON form
carries the same numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from digitnet.errors import DigitnetError
from digitnet.inference import explain as explaining
from digitnet.inference.explain import explain, log_odds
from digitnet.models import ReaderNet, TutorialCNN
from digitnet.plots import figures
from digitnet.preprocess import input_tensor
from digitnet.runs import calibration
from digitnet.runs.config import NOT_A_DIGIT

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


def odds(model: nn.Module, images: np.ndarray, target: int) -> np.ndarray:
    """The log-odds of ``target`` for uint8 images (N, 28, 28), straight from the definition:
    log p - log(1 - p), in float64."""
    with torch.no_grad():
        p = torch.softmax(model(input_tensor(images)).double(), dim=1)[:, target].numpy()
    return np.log(p) - np.log1p(-p)


def test_occlusion_is_the_mean_drop_of_the_squares_over_each_pixel(reader):
    image = a_digit()
    e = explain(reader, image, READER_CLASSES)
    s = e.saliency[0]
    base = odds(reader, image[None], s.target)[0]
    # two pixels by hand: the corner under one square, one of the stroke under four
    for (i, j), corners in (((0, 0), [(0, 0)]), ((7, 13), [(6, 12), (6, 10), (4, 12), (4, 10)])):
        copies = np.repeat(image[None], len(corners), axis=0)
        for k, (r, c) in enumerate(corners):
            copies[k, r : r + 4, c : c + 4] = 0
        drops = base - odds(reader, copies, s.target)
        assert s.values[i, j] == pytest.approx(drops.mean(), rel=1e-4, abs=1e-4)
    assert s.total == pytest.approx(base - odds(reader, np.zeros((1, 28, 28), np.uint8), s.target)[0],
                                    rel=1e-4)
    # without the grain: pixels 4 or more from any ink are under no square that has ink
    clean = np.where(image > 100, image, 0).astype(np.uint8)
    values = explain(reader, clean, READER_CLASSES).saliency[0].values
    far = np.ones((28, 28), bool)
    for r, c in zip(*np.nonzero(clean), strict=True):
        far[max(r - 3, 0) : r + 4, max(c - 3, 0) : c + 4] = False
    assert far.sum() > 200 and np.all(values[far] == 0) and values[~far].any()
    assert e.method_dict() == {"name": "occlusion", "score": "log-odds", "window": 4, "stride": 2}


def test_occlusion_runs_one_batch_of_the_squares_with_ink(reader):
    """Squares without ink are not run (blanking them changes nothing); all the rest go through
    the given runtime in one batch, after the answer's own image."""
    image = np.zeros((28, 28), np.uint8)
    image[10:14, 10:12] = 255  # covered by 3 x 2 squares: rows 8, 10, 12 by columns 8, 10
    batches = []

    def runtime(images):
        batches.append(np.array(images))
        with torch.no_grad():
            return torch.softmax(reader(input_tensor(images)), dim=1).numpy()

    e = explain(reader, image, READER_CLASSES, probabilities=runtime)
    assert [len(b) for b in batches] == [1, 2 + 6]  # the answer; the image, a blank page, 6 copies
    assert np.array_equal(batches[1][0], image / 255) and not batches[1][1].any()
    assert all((b != 0).sum() < (image != 0).sum() for b in batches[1][2:])  # each blanks some ink
    assert np.count_nonzero(e.saliency[0].values) <= 6 * 16


def test_log_odds_from_probabilities_stay_exact_when_sure():
    p = np.array([[1 - 3e-7, 1e-7, 2e-7], [0.25, 0.5, 0.25]], np.float32)
    assert log_odds(p, 0) == pytest.approx([np.log(1 - 3e-7) - np.log(3e-7), np.log(1 / 3)], rel=1e-6)
    assert np.isfinite(log_odds(np.array([[1.0, 0.0]], np.float32), 0)).all()


@pytest.mark.parametrize("which", ["tutorial", "reader"])
def test_integrated_gradients_add_up_to_the_log_odds_gained(which, request):
    model = request.getfixturevalue(which)
    classes = DIGITS if which == "tutorial" else READER_CLASSES
    image = a_digit()
    e = explain(model, image, classes, method="integrated-gradients", steps=256)
    s = e.saliency[0]
    gained = odds(model, image[None], s.target)[0] - odds(model, np.zeros((1, 28, 28), np.uint8), s.target)[0]
    assert s.total == pytest.approx(gained, rel=1e-4, abs=1e-4)
    assert float(s.values.sum()) == pytest.approx(s.total, rel=0.03, abs=0.02)
    assert s.values.shape == (28, 28)
    assert np.all(s.values[image == 0] == 0)  # no ink, no share: the path starts at a blank page


def test_one_step_is_gradient_times_input(tutorial):
    image = a_digit()
    x = input_tensor(image).requires_grad_(True)
    e = explain(tutorial, image, DIGITS, method="integrated-gradients", steps=1)
    target = e.saliency[0].target
    explaining.torch_log_odds(tutorial(x), target).sum().backward()
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


@pytest.mark.parametrize("method", explaining.METHODS)
def test_a_blank_page_has_no_pixel_shares(tutorial, method):
    e = explain(tutorial, np.zeros((28, 28), np.uint8), DIGITS, method=method)
    assert e.saliency[0].total == 0 and not e.saliency[0].values.any()


@pytest.mark.parametrize("method", explaining.METHODS)
def test_the_model_keeps_its_mode_and_weights(tutorial, method):
    tutorial.train()
    before = {k: v.clone() for k, v in tutorial.state_dict().items()}
    explain(tutorial, a_digit(), DIGITS, method=method)
    assert tutorial.training
    assert all(p.grad is None for p in tutorial.parameters())
    for k, v in tutorial.state_dict().items():
        assert torch.equal(v, before[k])


def test_json_form_holds_the_same_numbers(reader):
    e = explain(reader, a_digit(), READER_CLASSES, calibration.Verdict(reject=1.0, close=0.0))
    data = json.loads(json.dumps(e.to_dict(maps=3)))
    assert data["answer"] == e.answer.to_dict() and data["classes"] == list(READER_CLASSES)
    assert data["method"] == {"name": "occlusion", "score": "log-odds", "window": 4, "stride": 2}
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
        explain(tutorial, a_digit(), DIGITS, method="integrated-gradients", steps=0)
    with pytest.raises(DigitnetError, match="unknown method 'lime'; choose one of: occlusion, integ"):
        explain(tutorial, a_digit(), DIGITS, method="lime")


@pytest.mark.parametrize(("close", "method"), [(1.01, "occlusion"), (0.0, "integrated-gradients")])
def test_the_picture_renders(reader, close, method):
    e = explain(reader, a_digit(), READER_CLASSES, calibration.Verdict(reject=1.0, close=close), method)
    png = figures.to_png(figures.explanation(e, "tiny reader"), dpi=50)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
