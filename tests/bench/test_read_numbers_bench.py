"""bench/read_numbers.py's baseline answers as the old code did, with a 10-class view."""

from __future__ import annotations

import numpy as np
from read_numbers import DigitsOnly


class Eleven:
    def probabilities(self, images):
        # "not a digit" (class 10) most likely; of the digits, 3
        return np.array([[0.01] * 3 + [0.09] + [0.01] * 6 + [0.82]], np.float32)


def test_the_baseline_sees_ten_digit_classes_and_reads_the_most_likely_digit():
    probs = DigitsOnly(Eleven()).probabilities(np.zeros((1, 28, 28), np.uint8))
    assert probs.shape == (1, 10) and np.isclose(probs.sum(), 1.0)
    assert probs.argmax() == 3 and np.isclose(probs[0, 3], 0.5)  # 0.09 / 0.18
