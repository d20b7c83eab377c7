"""The line reader: CTC decoding into digits with probabilities, and loading weights safely."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from digitnet.errors import DigitnetError
from digitnet.models import LineNet
from digitnet.runs.line_reading import BUNDLED, WEIGHTS_FILE, LineReader, decode, string_probability
from digitnet.training.line_reader import LineConfig

BLANK = LineNet.BLANK


def columns(*rows: dict[int, float]) -> np.ndarray:
    """(T, 11) probabilities: each row's given classes, the rest of its mass on the blank."""
    probs = np.zeros((len(rows), 11), np.float32)
    for t, row in enumerate(rows):
        for c, p in row.items():
            probs[t, c] = p
        probs[t, BLANK] += 1 - probs[t].sum()
    return probs


def test_repeats_merge_blanks_separate_and_each_digit_is_placed_at_its_surest_column():
    probs = columns({}, {3: 0.7}, {3: 0.9}, {}, {3: 0.8}, {}, {7: 0.6, 1: 0.3})
    digits, _ = decode(probs, close=0.3)
    assert [d.digit for d in digits] == [3, 3, 7]
    assert [d.frame for d in digits] == [2, 4, 6]
    assert digits[0].probability == pytest.approx(0.9)
    assert [d.unsure for d in digits] == [False, False, True]  # 0.3 >= 0.3 x 0.6: "7 or 1?"
    assert digits[2].runner_up == 1


def test_string_probability_sums_every_placement_of_the_digits():
    probs = columns({5: 0.6}, {5: 0.5})  # "5" is 5-5, 5-blank or blank-5
    expected = 0.6 * 0.5 + 0.6 * 0.5 + 0.4 * 0.5
    assert string_probability(probs, [5]) == pytest.approx(expected, abs=1e-6)
    assert string_probability(probs, []) == pytest.approx(0.4 * 0.5, abs=1e-6)
    assert string_probability(probs, [5, 5]) == 0.0  # two 5s need a blank between them
    _, p = decode(probs, close=0.3)
    assert p == pytest.approx(expected, abs=1e-6)


def test_a_line_of_blanks_is_no_digit():
    digits, p = decode(columns({}, {}, {4: 0.2}), close=0.3)
    assert digits == [] and p == pytest.approx(0.8, abs=1e-6)


def test_the_bundled_reader_loads_and_a_folder_or_file_of_it_too(tmp_path):
    shutil.copy(BUNDLED, tmp_path / WEIGHTS_FILE)
    for source in (None, tmp_path, tmp_path / WEIGHTS_FILE):
        reader = LineReader.load(source)
        assert 0 < reader.close <= 1
        assert reader.frame_probabilities(np.zeros((32, 40), np.uint8)).shape == (40 // reader.frame, 11)


def test_what_is_not_a_line_reader_is_refused_in_one_line(tmp_path, trained_run):
    (tmp_path / WEIGHTS_FILE).write_bytes(b"\x00" * 64)
    cases = {tmp_path: "corrupt line reader", trained_run: "no line-reader.safetensors here",
             trained_run / "model.safetensors": "not a line reader"}
    for source, words in cases.items():
        with pytest.raises(DigitnetError, match=words) as e:
            LineReader.load(source)
        assert "\n" not in str(e.value)


def test_the_bundled_line_reader_is_what_make_line_reader_trains_now():
    """``make line-reader`` runs ``digitnet train-lines`` with its defaults and ships the run's
    metrics.json beside the weights: both must say the defaults of today's ``LineConfig``."""
    metrics = json.loads((BUNDLED.parent / "metrics.json").read_text())
    assert metrics["config"] == json.loads(json.dumps(dataclasses.asdict(LineConfig())))
    assert LineReader.load().frame == LineConfig().frame
