"""The reader's training: writer augmentation, "not a digit" negatives, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digitnet.inference import calibration
from digitnet.inference.predictor import Predictor
from digitnet.preprocess import input_tensor
from digitnet.training import negatives, recipes, runs
from digitnet.training.augment import WriterAugmentation, writers
from digitnet.training.run import fit


def test_writer_augmentation_keeps_shape_range_and_ink(mnist):
    x = input_tensor(mnist.x_train[:256])
    torch.manual_seed(0)
    out = writers(x, WriterAugmentation(p_writer=1.0, p_thick=0.3, p_thin=0.3, p_blur=0.3))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert (out.flatten(1).amax(1) > 0.2).all(), "no digit is wiped out"
    assert (out - x).abs().flatten(1).amax(1).min() > 0, "every image is changed"


def test_negatives_look_like_preprocessed_photos(mnist):
    fashion = mnist.x_train[:50]  # any uint8 images stand in for Fashion-MNIST here
    pool = negatives.pool(200, fashion, np.random.default_rng(0))
    assert pool.shape == (200, 28, 28) and pool.dtype == np.uint8
    assert (pool.reshape(200, -1).max(1) >= 200).all(), "ink stretched to white, as preprocessing does"
    again = negatives.pool(200, fashion, np.random.default_rng(0))
    assert np.array_equal(pool, again), "a seed gives the same images"


def test_temperature_fit_lowers_calibration_error():
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (4000,))
    logits = torch.randn(4000, 10)
    logits[torch.arange(4000), labels] += 2.0
    overconfident = logits * 4  # right 80% of the time but claims ~100%
    t = calibration.fit_temperature(overconfident, labels)
    before = calibration.ece(torch.softmax(overconfident, 1), labels)
    after = calibration.ece(torch.softmax(overconfident / t, 1), labels)
    assert t > 2 and after < before / 3 and after < 0.03


def test_verdict_names_not_a_digit_and_close_pairs():
    v = calibration.Verdict(reject=0.5, close=0.3)
    probs = np.array([[0.0] * 7 + [0.9] + [0.0] * 2 + [0.1],  # a sure 7
                      [0.0] * 4 + [0.5] + [0.0] * 4 + [0.4] + [0.1],  # 4 or 9?
                      [0.02] * 10 + [0.8]])  # not a digit
    said = calibration.answers(probs, v, [str(d) for d in range(10)])
    assert [a.text for a in said] == ["7", "4 or 9?", "not a digit"]
    assert [a.verdict for a in said] == ["digit", "unsure", "not_a_digit"]
    assert [a.digit for a in said] == [7, 4, 0] and said[1].runner_up == 9
    assert [a.probability for a in said] == pytest.approx([0.9, 0.5, 0.8])


def test_a_model_without_the_11th_class_never_refuses():
    probs = np.array([[0.05] * 9 + [0.55]])
    (said,) = calibration.answers(probs, calibration.from_record(None), list("0123456789"))
    assert said.verdict == "digit" and said.text == "9"


@pytest.mark.slow
def test_reader_recipe_trains_calibrates_and_reads(mnist_short_test, tmp_path, cli):
    """The recipe's whole path on a few hundred images: 11 classes, calibration recorded and
    folded into the saved model, and a predictor that names the 11th class."""
    config = recipes.resolve("reader", {"limit": 1200, "validation": 200, "negatives": 400,
                                        "epochs": 1, "batch_size": 100, "ema": 0.0})
    metrics = fit(config, tmp_path / "reader", dataset=mnist_short_test)
    cal = metrics["calibration"]
    assert cal["temperature"] > 0 and 0 <= cal["val_ece_after"] <= 1 and 0 < cal["reject"] <= 1
    # the acceptance is fitted on the validation digits as other writers write them
    assert 0 < cal["val_writers_accepted"] <= 1 and 0 <= cal["val_writers_accuracy"] <= 1
    assert "not a digit" in metrics["per_class_accuracy"]
    assert len(metrics["confusion"]) == 11
    predictor = Predictor.from_run(tmp_path / "reader", backend="torch")
    assert predictor.classes[-1] == "not a digit"
    assert predictor.probabilities(mnist_short_test.x_test[:5]).shape == (5, 11)
    model, _ = runs.load_model(tmp_path / "reader")
    assert model.head.out_features == 11
    # the 11 classes have 11 names wherever a command reports per class
    code, out, err = cli("evaluate", "--run", tmp_path / "reader")
    assert code == 0, err
    assert "not a digit" in out
