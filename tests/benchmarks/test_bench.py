"""``digitnet bench``: the quick mode runs end to end and writes the JSON it promises."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from digitnet.benchmarks.runner import find_reference, run_process
from digitnet.errors import DigitnetError

PROJECT = Path(__file__).resolve().parents[1]


def test_run_process_measures_its_own_child():
    # a child that holds 200 MB: its peak RSS is seen, the parent's own is not mixed in
    out, rss_mb, wall = run_process(
        [sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
                               "print('done')"], env={})
    assert out.strip() == "done"
    assert 200 <= rss_mb < 300 and wall > 0


def test_failing_child_is_one_clear_error():
    with pytest.raises(DigitnetError, match="failed"):
        run_process([sys.executable, "-c", "raise SystemExit('boom')"], env={})


def test_missing_reference_given_explicitly_is_refused(tmp_path):
    with pytest.raises(DigitnetError, match="--reference"):
        find_reference(tmp_path / "nope.py")


@pytest.mark.slow  # three training subprocesses: ~30 s on an idle 2-core machine
def test_quick_bench_end_to_end(cli, tmp_path, monkeypatch):
    reference = find_reference(None) or next(
        (p for p in (PROJECT.parent / "shared/bench/reference_torch.py",
                     PROJECT.parents[1] / "shared/bench/reference_torch.py") if p.is_file()), None)
    monkeypatch.chdir(tmp_path)  # the bench's temporary runs must not land in the project
    out = tmp_path / "bench.json"
    args = ["bench", "--quick", "--recipes", "speedrun", "--limit", "500", "--json", out]
    if reference is not None:
        args += ["--reference", reference]
    code, stdout, err = cli(*args)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert set(report) == {"machine", "options", "epoch", "recipes", "inference", "memory"}
    assert report["machine"]["cores"] >= 1 and "torch" in report["machine"]["versions"]
    epoch = report["epoch"]
    assert epoch["images"] == 500 and epoch["digitnet"]["median_seconds"] > 0
    if reference is None:
        assert "skipped" in epoch["reference"] and "skipping" in stdout
    else:
        assert epoch["ratio"] > 0 and 0 <= epoch["reference"]["median_accuracy"] <= 1
    assert set(report["recipes"]) == {"speedrun"}
    assert report["recipes"]["speedrun"]["goal"] == 0.99
    assert {(row["backend"], row["precision"]) for row in report["inference"]} == {
        ("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32")}
    for row in report["inference"]:
        assert row["images_per_second"] > 0
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
    assert report["memory"]["train_peak_rss_mb"] > 50
