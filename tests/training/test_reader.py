"""The reader's training: writer augmentation, "not a digit" negatives, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digitnet import runs
from digitnet.inference.predictor import Predictor
from digitnet.preprocess import input_tensor
from digitnet.runs import calibration
from digitnet.runs.config import NOT_A_DIGIT
from digitnet.training import negatives, recipes
from digitnet.training.augment import WriterAugmentation, writers
from digitnet.training.calibrate import choose_close, choose_verdict, ece, fit_temperature, recalibrate
from digitnet.training.run import fit


def test_writer_augmentation_keeps_shape_range_and_ink(mnist):
    x = input_tensor(mnist.x_train[:256])
    torch.manual_seed(0)
    out = writers(x, WriterAugmentation(p_writer=1.0, p_thick=0.3, p_thin=0.3, p_blur=0.3))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert (out.flatten(1).amax(1) > 0.2).all(), "no digit is wiped out"
    assert (out - x).abs().flatten(1).amax(1).min() > 0, "every image is changed"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_writer_augmentation_takes_a_batch_on_the_gpu(mnist):
    gpu = torch.device("cuda")
    x = input_tensor(mnist.x_train[:64]).to(gpu)
    y = torch.from_numpy(mnist.y_train[:64]).long().to(gpu)
    out = WriterAugmentation(p_lowres=1.0)(x, y)  # every effect's grids made on the CPU
    assert out.device == x.device and out.shape == x.shape


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
    t = fit_temperature(overconfident, labels)
    before = ece(torch.softmax(overconfident, 1), labels)
    after = ece(torch.softmax(overconfident / t, 1), labels)
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
def test_acceptance_is_set_on_other_writers_and_the_ratio_on_plain_digits():
    """Plain digits are easy, other writers' hard: the share accepted is counted on the hard
    ones, and the "a or b?" ratio still comes from the plain ones (on the hard ones no ratio
    makes 99.8% of the plain answers right, and it would fall to its floor)."""
    g = torch.Generator().manual_seed(0)
    n = 2000
    labels = torch.randint(0, 10, (2 * n,), generator=g)
    logits = torch.randn(2 * n, 11, generator=g)
    logits[torch.arange(n), labels[:n]] += 12.0  # plain: sure and right
    logits[torch.arange(n, 2 * n), labels[n:]] += 2.0  # other writers: often wrong
    logits[n:, NOT_A_DIGIT] += 1.5  # and often "not a digit"-ish
    writers = torch.arange(2 * n) >= n
    v = choose_verdict(logits, labels, accept=0.995, writers=writers)
    probs = torch.softmax(logits / v.temperature, 1)
    kept = (probs[writers, NOT_A_DIGIT] < v.reject).float().mean()
    assert 0.994 <= kept <= 0.997  # 99.5% of the other writers' digits pass the threshold
    assert v.close > 0.05  # not the floor: chosen where 99.8% is reachable
    on_all = choose_close(probs[labels != NOT_A_DIGIT], labels, v)
    assert on_all < v.close  # on everything: far more "a or b?"


def test_reader_recipe_trains_calibrates_and_reads(mnist_short_test, short_mnist_everywhere, tmp_path,
                                                   cli, count_reads):
    """The recipe's whole path on a few hundred images: 11 classes, calibration recorded and
    folded into the saved model, and a predictor that names the 11th class. ``evaluate`` and
    the refit load MNIST themselves: they get the same 1,000 test images."""
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
    # fitted again with the current rule: the temperatures compose, the answers' order stays
    before = predictor.probabilities(mnist_short_test.x_test[:200])
    counts = count_reads(tmp_path / "reader")
    again = recalibrate(tmp_path / "reader", data_dir=None)
    assert dict(counts) == {name: 1 for name in (runs.CONFIG_FILE, runs.MODEL_FILE, runs.METRICS_FILE)}
    refitted = Predictor.from_run(tmp_path / "reader", backend="torch")
    after = refitted.probabilities(mnist_short_test.x_test[:200])
    assert again["temperature"] == pytest.approx(cal["temperature"], rel=0.1)  # a refit moves T little
    assert runs.read_metrics(tmp_path / "reader")["calibration"] == again
    np.testing.assert_array_equal(before.argmax(1), after.argmax(1))
