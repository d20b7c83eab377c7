"""bench/reader.py on tiny sets: every row of the reader table, for two readers, in one JSON line."""

from __future__ import annotations

import json

import pytest
import reader


@pytest.mark.slow
def test_the_reader_bench_measures_every_row_for_both_readers(mnist, capsys):
    assert reader.main(["--compare", "bundled", "--scale", "0.006", "--sets", "report"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    a, b = result["results"]["A"], result["results"]["B"]
    assert set(a) == set(b) >= {"MNIST test", "harsh photos (MNIST test)", "low-res (MNIST test)",
                                "other writers (MNIST test)", "calibration", "held-out generators",
                                "training's generators, other seed", "numbers (MNIST test)",
                                "printed numbers", "speed"}
    assert a["MNIST test"]["n"] == 60 and a["MNIST test"]["top_digit"] > 0.9
    assert a["MNIST test"] == b["MNIST test"]  # the same reader on the same images
    held_out = a["held-out generators"]
    assert "Fashion-MNIST test" in held_out and "doodles" in held_out and "scribbles" not in held_out
    assert "scribbles" in a["training's generators, other seed"]
    assert set(a["numbers (MNIST test)"]["by_spacing"]) == {"clear", "tight", "touching", "all"}  # 3
    assert a["printed numbers"]["by_spacing"]["all"]["numbers"] == 1
    assert a["speed"]["ms_per_digit"] > 0 and a["speed"]["ms_per_6_digit_number"] > 0


@pytest.mark.slow
def test_the_numbers_sets_measure_only_the_line_readers_rows(mnist, capsys):
    assert reader.main(["--compare", "bundled", "--scale", "0.006", "--sets", "numbers"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    a, b = result["results"]["A"], result["results"]["B"]
    assert {"numbers (MNIST test)", "printed numbers", "speed"} <= set(a) <= {
        "numbers (MNIST test)", "printed numbers", "speed", "typeface numbers (independent)"}
    assert a["numbers (MNIST test)"] == b["numbers (MNIST test)"]  # the same line reader
    assert a["numbers (MNIST test)"]["by_spacing"]["all"]["numbers"] == 3
