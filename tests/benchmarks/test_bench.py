"""``digitnet bench``: the quick mode runs end to end and writes the JSON it promises."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from digitnet.benchmarks import runner
from digitnet.benchmarks.runner import BenchOptions, find_reference, machine_name, run_process
from digitnet.commands import bench as bench_command
from digitnet.commands.bench import tables
from digitnet.datasets import get_spec
from digitnet.errors import DigitnetError
from digitnet.runs.config import TrainConfig
from digitnet.training.recipes import RECIPES
from digitnet.training.run import split_sizes

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


def test_training_runs_interleave_with_the_reference_round_by_round(monkeypatch, tmp_path):
    order = []

    def fake(name):
        return runner.Process({"train_seconds": 1.0, "test_accuracy": 0.99, "train_images": 10,
                               "epochs_run": 1}, 100.0, 1.0)

    monkeypatch.setattr(runner, "reference_epoch",
                        lambda *a: order.append("reference") or fake("reference"))
    monkeypatch.setattr(runner, "digitnet_train", lambda run_dir, data_dir, *args: order.append(
        args[args.index("--recipe") + 1] if "--recipe" in args else "digitnet") or fake(run_dir))
    opts = BenchOptions(repeats=3, recipes=("fast", "speedrun"), reference=tmp_path / "ref.py")
    runs = runner.train_rounds(opts, tmp_path)
    one = ["reference", "digitnet", "fast", "speedrun"]
    assert order == one + one[::-1] + one  # no measurement is taken far from the others
    assert {name: len(r) for name, r in runs.items()} == dict.fromkeys(one, 3)
    recipes = runner.bench_recipes(runs, opts.recipes, runner.bench_epoch(runs)["reference"][
        "median_seconds"])
    assert recipes["fast"]["ratio_to_reference_epoch"] == 1.0


def test_every_recipe_runs_on_a_quick_benchs_subset(cli):
    # The reader's 5,000 held-out digits once left none of a quick run's 1,000 to train on:
    # `digitnet bench --quick` failed. Each recipe's arguments are resolved as `train` resolves
    # them, and the split they give must leave images to train on.
    opts = BenchOptions.quick()
    for name in (r for r in RECIPES if r != "tutorial"):
        code, out, err = cli("train", "--recipe", name, *runner.recipe_args(opts, name), "--dry-run")
        assert code == 0, err
        config = TrainConfig.from_dict(json.loads(out))
        n, cut = split_sizes(SimpleNamespace(x_train=range(get_spec(config.dataset).shape[0])), config)
        assert n == opts.recipe_limit and 0 < cut <= n and config.epochs == 1, name
        assert config.negatives <= opts.recipe_limit, name
    assert runner.recipe_args(BenchOptions(), "reader") == []  # a full run: the recipe as it is


def test_machine_name_says_the_cpu_its_bf16_and_the_load():
    machine = {"cpu": "AMD EPYC", "cores": 2, "cpu_flags": ["avx2", "avx512f", "avx512_bf16"],
               "native_bf16": True, "load_average_at_start": [1.25, 1, 1],
               "load_average_at_end": [3.0, 2, 1], "versions": {"torch": "2.13.0"}}
    assert machine_name(machine) == ("AMD EPYC, 2 cores, AVX512-BF16 (bf16 native), torch "
                                     "2.13.0, load average 1.2 at start, 3.0 at end")


def test_tables_show_each_recipe_against_its_goal_and_skip_an_empty_one():
    process = runner.Process({"train_seconds": 2.0, "test_accuracy": 0.991, "train_images": 10,
                              "epochs_run": 3}, 100.0, 1.0)
    runs = {"reference": [process], "digitnet": [process], "fast": [process]}
    report = runner.Report({}, {}, runner.bench_epoch(runs),
                           runner.bench_recipes(runs, ("fast",), 4.0), [])
    titles = [t.title for t in tables(report)]
    assert titles == ["One epoch (10 images), medians", "Recipes, medians", "Inference"]
    console = Console(width=120, record=True)
    console.print(tables(report)[1])
    row = next(line for line in console.export_text().splitlines() if "fast" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        "fast", "3", "2.00", "0.50x", "0.9910", "0.990 reached"]
    report.recipes = {}
    assert [t.title for t in tables(report)] == ["One epoch (10 images), medians", "Inference"]


@pytest.mark.slow  # two training subprocesses and an export: ~20 s on an idle 2-core machine
def test_quick_bench_end_to_end(cli, tmp_path, monkeypatch, short_mnist_everywhere):
    # No recipe is timed: a recipe run is the same subprocess as the default epoch with other
    # arguments (the tables and the round order are tested above, each recipe in test_recipes).
    reference = find_reference(None) or next(
        (p for p in (PROJECT.parent / "shared/bench/reference_torch.py",
                     PROJECT.parents[1] / "shared/bench/reference_torch.py") if p.is_file()), None)
    monkeypatch.chdir(tmp_path)  # the bench's temporary runs must not land in the project
    out = tmp_path / "bench.json"
    args = ["bench", "--quick", "--recipes", "", "--limit", "500", "--json", out]
    if reference is not None:
        args += ["--reference", reference]
    code, stdout, err = cli(*args)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert set(report) == {"machine", "options", "epoch", "recipes", "inference", "memory"}
    assert report["machine"]["cores"] >= 1 and "torch" in report["machine"]["versions"]
    assert len(report["machine"]["load_average_at_end"]) == 3
    assert machine_name(report["machine"]) in " ".join(stdout.split())
    epoch = report["epoch"]
    assert epoch["images"] == 500 and epoch["digitnet"]["median_seconds"] > 0
    if reference is None:
        assert "skipped" in epoch["reference"] and "skipping" in stdout
    else:
        assert epoch["ratio"] > 0 and 0 <= epoch["reference"]["median_accuracy"] <= 1
    assert report["recipes"] == {} and "Recipes" not in stdout
    assert {(row["backend"], row["precision"]) for row in report["inference"]} == {
        ("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx-int8", "int8")}
    for row in report["inference"]:
        if "missing" in row:  # a model trained this briefly may answer too near ties for int8
            assert row["backend"] == "onnx-int8" and "has no int8 copy" in row["missing"]
            continue
        assert row["images_per_second"] > 0 and row["throughput_ratio_to_torch_fp32"] > 0
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
    assert report["memory"]["train_peak_rss_mb"] > 50


def test_a_json_file_it_could_not_write_is_refused_before_measuring(cli, tmp_path, monkeypatch):
    (tmp_path / "plain-file").write_text("not a folder")
    monkeypatch.setattr(bench_command, "run_bench", lambda *a, **k: pytest.fail("measured first"))
    code, _, err = cli("bench", "--quick", "--json", tmp_path / "plain-file" / "bench.json")
    assert code == 2 and "plain-file is a file, not a folder" in err and err.count("\n") == 1
