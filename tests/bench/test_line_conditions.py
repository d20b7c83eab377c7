"""bench/line_conditions.py on a few numbers: exact numbers by writing condition and spacing."""

from __future__ import annotations

import json

import line_conditions
import numpy as np


def test_each_condition_is_read_in_every_spacing(mnist, capsys):
    argv = ["--numbers", "1", "--conditions", "plain", "condensed", "long", "--compare", "bundled"]
    assert line_conditions.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    a, b = result["results"]["A"], result["results"]["B"]
    assert set(a) == {"plain", "condensed", "long"} and a == b  # the same reader on the same numbers
    assert set(a["plain"]) == {"clear", "tight", "touching", "all"}
    assert a["plain"]["all"]["numbers"] == 3 and 0 <= a["plain"]["all"]["exact"] <= 1


def test_conditions_change_the_digits_and_long_numbers_are_long(mnist):
    x, y = mnist.x_train[:50], mnist.y_train[:50]
    idx = np.arange(10)
    rng = np.random.default_rng(0)
    plain = line_conditions.digits_for("plain", x, y, idx, rng)
    assert np.array_equal(plain, x[idx])
    for condition in ("hairline", "condensed", "faint", "slant"):
        changed = line_conditions.digits_for(condition, x, y, idx, rng)
        assert changed.shape == plain.shape and changed.dtype == np.uint8
        assert not np.array_equal(changed, plain)
    cases = line_conditions.numbers("long", x, y, 1, seed=0)
    assert len(cases) == 3 and all(8 <= len(truth) <= 12 for _, truth, _ in cases)
