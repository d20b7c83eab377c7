"""Fine-tuning on people's corrections: a user teaches the model a style it misreads, and a
model that would forget MNIST is refused."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from digitnet import runs
from digitnet.corrections import store
from digitnet.evaluate import Evaluation, predict_logits
from digitnet.inference.predictor import Predictor
from digitnet.models import build_model
from digitnet.runs.config import TrainConfig
from digitnet.training.calibrate import ece
from digitnet.training.finetune import FinetuneConfig, finetune, guard, old_data
from digitnet.vision import imaging, styles
from digitnet.web.app import Settings, create_app


def style_accuracy(run_dir, style: str, seed: int, n: int = 200) -> float:
    rng = np.random.default_rng(seed)
    x = np.stack([imaging.to_mnist(d) for d in styles.render_many(style, n, rng)])
    said = Predictor.from_run(run_dir, backend="torch").probabilities(x).argmax(1)
    return float((said == styles.digit_of(style)).mean())


@pytest.mark.slow
def test_a_user_teaches_the_model_a_one_with_a_long_flag(trained_run, mnist, tmp_path):
    """200 corrections through the API, then fine-tuning: the style is read right, MNIST not
    forgotten. The fixture's model is a weak tutorial network (94%): it needs a larger share
    of corrections and a lighter pull towards its own, often wrong, earlier answers than the
    defaults chosen for the reader, and its digits' accuracies move more when it learns (one
    fell by 1-2 points, and over 2% of its answers changed, while the whole rose 94.13% ->
    94.27%), so its guard allows a digit 3 points and 5% of answers changed, rather than the
    reader's 1 point and 2%. Measured: the style 2.5% right before, 97% after; the
    held-out corrections 0% and 92.5%; MNIST test 94.13% before, 94.28% after. On every other
    test image (AMD EPYC, AVX2, fp32): held out 0% and 97.5%, MNIST 94.16% and 94.70%, 2.9% of
    answers changed."""
    settings = Settings(run_dir=trained_run, store=tmp_path / "store", max_concurrent=2)
    rng = np.random.default_rng(0)
    with TestClient(create_app(dataclasses.replace(settings, corrections_per_client=1000))) as client:
        for drawing in styles.render_many("one_flag", 200, rng):
            png = cv2.imencode(".png", drawing)[1].tobytes()
            r = client.post("/api/corrections", files={"file": ("d.png", png, "image/png")},
                            data={"label": "1"})
            assert r.status_code == 201, r.text
    assert style_accuracy(trained_run, "one_flag", seed=1) < 0.2

    assert len(store.labelled(settings.corrections_db, ["accepted"])) == 0  # nothing reviewed yet
    store.review(settings.corrections_db, "accepted", range(1, 201))
    out = tmp_path / "tuned"
    # The guard measures on every other test image: the same check at half the cost.
    half_test = dataclasses.replace(mnist, x_test=mnist.x_test[::2], y_test=mnist.y_test[::2])
    outcome = finetune(trained_run, store.labelled(settings.corrections_db, ["accepted"]),
                       FinetuneConfig(share=0.25, distill=1.0, max_class_drop=0.03,
                                      max_moved=0.05), out, dataset=half_test)
    assert outcome.corrections == {"learnt": 160, "held_out": 40, "skipped": 0}
    assert outcome.before["held_out"] < 0.2 and outcome.after["held_out"] >= 0.85
    assert outcome.accepted and outcome.mnist_change >= -0.001
    assert style_accuracy(out, "one_flag", seed=1) >= 0.95  # drawings it never saw
    metrics = runs.read_metrics(out)
    assert metrics["test_accuracy"] == pytest.approx(outcome.after["mnist_test"])
    assert metrics["finetune"]["from_run"] == str(trained_run.resolve())
    assert metrics["calibration"] is None  # the tutorial model never was calibrated


@pytest.fixture
def small_mnist(mnist):
    """1,200 training images and 500 test images."""
    return dataclasses.replace(mnist, x_train=mnist.x_train[:1200], y_train=mnist.y_train[:1200],
                               x_test=mnist.x_test[:500], y_test=mnist.y_test[:500])


def corrections(n: int, label: int) -> store.Labelled:
    x = np.stack([imaging.to_mnist(d) for d in styles.render_many("one_flag", n, np.random.default_rng(0))])
    return store.Labelled(x, np.full(n, label), np.arange(1, n + 1))


def test_a_model_that_would_forget_mnist_is_not_written(trained_run, small_mnist, tmp_path, count_reads):
    strict = FinetuneConfig(steps=2, batch_size=32, max_drop=-1.0)  # only a gain of 100 points would do
    counts = count_reads(trained_run)
    outcome = finetune(trained_run, corrections(10, 1), strict, tmp_path / "out", dataset=small_mnist)
    assert dict(counts) == {name: 1 for name in (runs.CONFIG_FILE, runs.MODEL_FILE, runs.METRICS_FILE)}
    assert not outcome.accepted and outcome.run_dir is None and "accuracy fell" in outcome.refused
    assert not (tmp_path / "out").exists()


def evaluation(per_class_right: list[int], n: int = 100) -> Evaluation:
    """An Evaluation of ``n`` images per class, ``per_class_right[c]`` of class c right (the
    rest read as the next class)."""
    k = len(per_class_right)
    confusion = np.zeros((k, k), np.int64)
    for c, right in enumerate(per_class_right):
        confusion[c, c], confusion[c, (c + 1) % k] = right, n - right
    return Evaluation(loss=0.0, accuracy=float(np.trace(confusion) / confusion.sum()), confusion=confusion)


def test_the_guard_refuses_answers_that_move_on_data_no_client_writes():
    fc = FinetuneConfig(max_drop=0.001, max_class_drop=0.01, max_moved=0.02)
    classes = tuple("0123456789")
    before = evaluation([95] * 10)
    assert guard(fc, before, before, 0.0, classes) is None
    assert guard(fc, before, evaluation([96] * 10), 0.01, classes) is None  # better everywhere
    # a targeted relabelling: the 7s fall by 5 points, others rise, the whole holds
    poisoned = evaluation([95, 96, 96, 96, 96, 96, 96, 90, 96, 96])
    assert poisoned.accuracy >= before.accuracy
    assert "of '7' fell by 5.00%" in guard(fc, before, poisoned, 0.015, classes)
    assert "accuracy fell by 1.00%" in guard(fc, before, evaluation([94] * 10), 0.01, classes)
    assert "3.00% of the answers" in guard(fc, before, before, 0.03, classes)


@pytest.mark.slow
def test_a_targeted_relabelling_is_refused_though_mnist_accuracy_holds(trained_run, mnist, tmp_path):
    """Handwritten 7s taught as 1s: with the overall accuracy check switched off, the guard
    still refuses the model, naming the class that moved."""
    data = dataclasses.replace(mnist, x_test=mnist.x_test[:2000], y_test=mnist.y_test[:2000])
    sevens = mnist.x_train[mnist.y_train == 7][:80]
    poison = store.Labelled(sevens, np.full(len(sevens), 1), np.arange(1, len(sevens) + 1))
    fc = FinetuneConfig(steps=40, share=0.5, max_drop=1.0)
    outcome = finetune(trained_run, poison, fc, tmp_path / "out", dataset=data)
    assert not outcome.accepted and "of '" in outcome.refused and not (tmp_path / "out").exists()


def test_a_calibrated_reader_is_calibrated_again(small_mnist, tmp_path):
    """A reader's "not a digit" class is kept with negatives, and its temperature and verdict
    thresholds are fitted again on its validation split and the temperature folded into the
    weights: the saved model's calibration error there is the one recorded."""
    config = TrainConfig(model="reader_net", model_args={"width": [8, 8, 16, 16]}, negatives=1,
                         recipe="reader", limit=1200, validation=200)
    start = tmp_path / "reader"
    start.mkdir()
    torch.manual_seed(0)
    model = build_model(config.model, **config.model_kwargs())
    runs.write_config(start, config, dataset_sha256=small_mnist.sha256, parameters=1)
    runs.save_model(start, model, config)
    previous = {"temperature": 0.5, "reject": 0.5, "close": 0.3}
    runs.write_metrics(start, {"calibration": previous})
    data = corrections(10, 10)  # "not a digit", which a reader has
    fc = FinetuneConfig(steps=3, batch_size=32, negatives=60, max_drop=1.0, max_class_drop=1.0, max_moved=1.0)
    outcome = finetune(start, data, fc, tmp_path / "out", dataset=small_mnist)
    assert outcome.accepted and outcome.corrections["skipped"] == 0
    record = runs.read_metrics(tmp_path / "out")["calibration"]
    assert {k: record[k] for k in previous} != previous  # fitted again, not copied
    _, _, x_val, y_val = old_data(small_mnist, config, fc.negatives, None, np.random.default_rng(fc.seed))
    tuned, _ = runs.load_model(tmp_path / "out")
    saved_ece = ece(torch.softmax(predict_logits(tuned, x_val), 1), y_val)
    assert saved_ece == pytest.approx(record["val_ece_after"], abs=1e-4)
    assert record["val_ece_after"] <= record["val_ece_before"] + 1e-6


def test_a_ten_class_model_leaves_out_what_it_cannot_learn(trained_run, small_mnist, tmp_path):
    data = corrections(10, 10)
    with pytest.raises(Exception, match="no corrections to learn from"):
        finetune(trained_run, data, FinetuneConfig(steps=1), tmp_path / "out", dataset=small_mnist)
