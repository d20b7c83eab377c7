"""Pictures: the numbers they show come from the model and metrics, and they render as PNG."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from digitnet import runs
from digitnet.inference.predictor import Predictor
from digitnet.models import build_model
from digitnet.plots import figures, inspection
from digitnet.preprocess import input_tensor

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_SIGNATURE)
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.size > 0
    return image


@pytest.fixture(scope="module")
def test_predictions(trained_run, mnist) -> inspection.Predictions:
    return inspection.predict(Predictor.from_run(trained_run), mnist.x_test, mnist.y_test)


def test_importing_plots_leaves_pyplot_alone():
    code = "import sys, digitnet.plots.figures; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_confusion_counts_are_the_models_test_predictions(trained_run, test_predictions, mnist):
    matrix = test_predictions.confusion()
    assert matrix.sum() == len(mnist.y_test)
    assert (matrix.sum(axis=1) == np.bincount(mnist.y_test, minlength=10)).all()
    # Training measured the same weights on the same images: the same table, give or take a
    # near-tie that a different batch size may round the other way.
    recorded = np.array(runs.read_metrics(trained_run)["confusion"])
    assert np.abs(matrix - recorded).sum() <= 2
    fig = figures.confusion(matrix, mnist.classes, "test")
    annotated = [int(t.get_text()) for t in fig.axes[0].texts]
    assert annotated == matrix.reshape(-1).tolist()
    assert decode(figures.to_png(fig)).shape[1] >= 800


def test_most_confident_mistakes_are_wrong_and_sorted(test_predictions):
    mistakes = inspection.most_confident_mistakes(test_predictions, 20)
    all_wrong = ~test_predictions.right
    assert 20 <= all_wrong.sum() < 1000  # the ~97% model makes a few hundred mistakes
    assert len(mistakes.labels) == 20 and not mistakes.right.any()
    assert (np.diff(mistakes.confidence) <= 0).all()
    assert mistakes.confidence[0] == test_predictions.confidence[all_wrong].max()
    captions = [t.get_text() for t in figures.errors(mistakes, tuple("0123456789"), "t").axes[0].texts]
    y, p = mistakes.labels[0], mistakes.predicted[0]
    assert captions[0] == f"{y} → {p}\n{mistakes.confidence[0]:.1%}"


def test_predictions_grid_colours_right_and_wrong(test_predictions):
    index = np.concatenate([np.flatnonzero(test_predictions.right)[:5],
                            np.flatnonzero(~test_predictions.right)[:5]])
    fig = figures.predictions(test_predictions.take(index), tuple("0123456789"), "t")
    colours = [t.get_color() for t in fig.axes[0].texts]
    assert colours == [figures.RIGHT] * 5 + [figures.WRONG] * 5
    assert "5 of 10 right" in fig.get_suptitle()


def test_history_plot_shows_the_recorded_figures(trained_run):
    metrics = runs.read_metrics(trained_run)
    fig = figures.run_history(metrics, "run")
    loss_ax, acc_ax = fig.axes
    lines = {line.get_label(): line for line in acc_ax.get_lines()}
    epochs = metrics["history"]["epochs"]
    assert list(lines["test, end of epoch"].get_ydata()) == [e["test_accuracy"] for e in epochs]
    steps = metrics["history"]["steps"]
    assert len(lines["train, per step"].get_xdata()) == len(steps) >= 3
    assert lines["train, per step"].get_xdata()[-1] <= len(epochs)  # steps are placed in epochs
    decode(figures.to_png(fig))


def test_ema_removes_the_start_up_bias():
    assert np.allclose(figures.ema([2.0] * 5, 0.9), 2.0)
    smoothed = figures.ema([0.0] * 10 + [1.0] * 10, 0.8)
    assert smoothed[9] == 0 and 0 < smoothed[10] < smoothed[-1] < 1


def test_layer_outputs_follow_the_tutorial_network():
    model = build_model("tutorial_cnn").eval()
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255
    outputs = inspection.layer_outputs(model, image)
    # dropout (eval) and flatten pass their input on unchanged, so they are left out
    assert [(o.name, o.values.shape) for o in outputs] == [
        ("conv1", (32, 26, 26)), ("conv2", (32, 24, 24)), ("pool", (32, 12, 12)),
        ("dense1", (128,)), ("dense2", (10,)),
    ]
    logits = model(input_tensor(image[None])).detach().numpy()[0]
    assert np.allclose(outputs[-1].values, logits, atol=1e-6)
    name, kernels = inspection.first_conv_filters(model)
    assert name == "conv1" and kernels.shape == (32, 3, 3)
    assert np.array_equal(kernels, model.conv1.weight.detach().numpy()[:, 0])


@pytest.mark.parametrize("arch", ["tutorial_cnn", "speedrun_net"])
def test_filters_figure_renders_for_each_architecture(arch):
    model = build_model(arch).eval()
    image = np.zeros((28, 28), np.uint8)
    image[8:20, 8:20] = 200
    outputs = inspection.layer_outputs(model, image)
    name, kernels = inspection.first_conv_filters(model)
    probs = np.full(10, 0.1, np.float32)
    fig = figures.filters(name, kernels, image, "0", outputs, probs, tuple("0123456789"), arch,
                        per_layer=4)  # few maps per layer: drawing dozens of axes is what takes time
    height, width = decode(figures.to_png(fig)).shape[:2]
    assert 800 <= width <= 1400 and height > 400
