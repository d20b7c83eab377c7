"""Training the line reader: a tiny run writes a reader that loads, with honest metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from digitnet import runs
from digitnet.errors import DigitnetError
from digitnet.models import LineNet
from digitnet.runs.line_reading import WEIGHTS_FILE, LineReader
from digitnet.training.line_reader import LineConfig, ctc_loss, edit_distance, fit_lines, refit
from digitnet.training.number_figures import summarise


def test_a_tiny_run_writes_a_reader_and_its_metrics(mnist, tmp_path):
    metrics = fit_lines(LineConfig(epochs=1, limit=256, validation=300, batch_size=32, threads=1,
                                   test_numbers=9), tmp_path, report=lambda line: None)
    reader = LineReader.load(tmp_path)
    assert reader.frame == 2  # the default: a column of output per two pixels of the line
    assert reader.frame_probabilities(np.zeros((32, 64), np.uint8)).shape == (32, 11)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["val_exact"] == metrics["val_exact"] and 0 <= saved["val_exact"] <= 1
    assert saved["temperature"] > 0 and 0 < saved["close"] <= 1
    assert len(saved["history"]) == 1 and (tmp_path / WEIGHTS_FILE).stat().st_size < 2_000_000
    # test figures: numbers composed from MNIST test digits, three of each spacing
    test = saved["test"]
    assert set(test["by_spacing"]) == {"clear", "tight", "touching", "all"}
    assert [test["by_spacing"][k]["numbers"] for k in ("clear", "tight", "touching", "all")] == [3, 3, 3, 9]
    assert 0 <= test["exact"] <= test["per_digit"] <= 1 and 0 <= test["number_ece"] <= 1
    assert test["exact"] == test["by_spacing"]["all"]["exact"] and "MNIST test" in test["source"]
    # fitted again with the current rule: the same validation lines give the same ratio, the
    # new temperature folds in on top, the files follow and the readings do not change
    line = np.zeros((32, 64), np.uint8)
    line[8:24, 20:24] = 255  # a stroke
    before = reader.frame_probabilities(line)
    again = refit(tmp_path)
    assert again["close"] == pytest.approx(saved["close"])
    assert again["temperature"] > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["close"] == again["close"]
    after = LineReader.load(tmp_path).frame_probabilities(line)
    np.testing.assert_array_equal(before.argmax(1), after.argmax(1))


def test_test_figures_count_exact_numbers_digits_and_calibration():
    readings = [("clear", "123", "123", 0.9, [0.99, 0.95, 0.96]),
                ("tight", "45", "46", 0.6, [0.9, 0.7]),
                ("touching", "789", "", 0.0, [])]  # refused: no text
    test = summarise(readings)
    assert test["by_spacing"]["clear"] == {"numbers": 1, "exact": 1.0, "per_digit": 1.0}
    assert test["by_spacing"]["tight"]["per_digit"] == 0.5
    assert test["by_spacing"]["touching"]["per_digit"] == 0
    assert test["exact"] == pytest.approx(1 / 3) and test["per_digit"] == pytest.approx(0.5)
    # number ECE: bins 0.9 (right, gap 0.1), 0.6 (wrong, 0.6), 0.0 (wrong, 0): (0.1 + 0.6) / 3
    assert test["number_ece"] == pytest.approx(0.7 / 3)
    assert 0 < test["digit_ece"] < 1


def test_negative_test_numbers_are_one_line():
    with pytest.raises(DigitnetError, match="--test-numbers must be 0 or positive"):
        LineConfig(test_numbers=-1)


def test_ctc_loss_is_low_for_the_right_digits_and_high_for_wrong_ones():
    import torch

    logits = torch.full((1, 6, 11), -5.0)
    for t, c in enumerate([10, 4, 10, 2, 2, 10]):
        logits[0, t, c] = 5.0
    right = ctc_loss(logits, [np.array([4, 2])], [6])
    wrong = ctc_loss(logits, [np.array([4, 4])], [6])
    assert float(right) < 0.01 < 1.0 < float(wrong)


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([], [5, 5]) == 2
    assert edit_distance([7, 1, 7], [7, 7]) == 1 and edit_distance([4], [4]) == 0


def test_bad_settings_are_one_line():
    with pytest.raises(DigitnetError, match="--epochs must be at least 1"):
        LineConfig(epochs=0)
    with pytest.raises(DigitnetError, match=r"--crisp must be in \[0, 1\), got 1.5"):
        LineConfig(crisp=1.5)


def test_frame_4_reads_half_as_many_columns_from_weights_of_the_same_shapes(mnist, tmp_path):
    """A reader trained with --frame 4 saves its frame; the weights' shapes are the same as
    frame 2's (only a pooling step differs), and an older file without a frame reads as 4."""
    fit_lines(LineConfig(epochs=1, limit=256, validation=300, batch_size=32, threads=1, test_numbers=0,
                         frame=4), tmp_path, report=lambda line: None)
    reader = LineReader.load(tmp_path)
    assert reader.frame == 4
    assert reader.frame_probabilities(np.zeros((32, 64), np.uint8)).shape == (16, 11)
    fine = LineNet(frame=2)
    fine.load_state_dict(reader.model.state_dict())  # same shapes: no error
    assert fine(torch.zeros(1, 1, 32, 64)).shape == (1, 32, 11)
    tensors, metadata = runs.read_safetensors(tmp_path / WEIGHTS_FILE, "line reader")
    args = json.loads(metadata["model_args"])
    del args["frame"]  # as written before readers recorded their frame
    older = tmp_path / "older.safetensors"
    older.write_bytes(runs.safetensors_bytes(tensors, {**metadata, "model_args": json.dumps(args)}))
    assert LineReader.load(older).frame == 4
    with pytest.raises(DigitnetError, match="--frame must be 2 or 4"):
        LineConfig(frame=3)


def test_a_reader_saved_before_frames_were_recorded_is_refitted_as_the_frame_4_it_is(mnist, tmp_path):
    """Refitting rebuilds the config from the file's metadata; a reader written before readers
    recorded their frame reads with 4-pixel columns, and must still say so after its refit."""
    fit_lines(LineConfig(epochs=1, limit=256, validation=300, batch_size=32, threads=1, test_numbers=0,
                         frame=4), tmp_path, report=lambda line: None)
    tensors, metadata = runs.read_safetensors(tmp_path / WEIGHTS_FILE, "line reader")
    args, config = json.loads(metadata["model_args"]), json.loads(metadata["config"])
    del args["frame"], config["frame"]  # as such a reader's file holds them
    (tmp_path / WEIGHTS_FILE).write_bytes(runs.safetensors_bytes(
        tensors, {**metadata, "model_args": json.dumps(args), "config": json.dumps(config)}))
    refit(tmp_path)
    assert LineReader.load(tmp_path).frame == 4
