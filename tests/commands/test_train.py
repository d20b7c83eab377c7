"""``digitnet train``'s options come from TrainConfig: one place for every default."""

from __future__ import annotations

import json
import shutil

import pytest

from digitnet import runs
from digitnet.cli import main
from digitnet.errors import DigitnetError
from digitnet.runs.config import TrainConfig
from digitnet.training import recipes
from digitnet.training.ensemble import fit_ensemble


def test_dry_run_prints_the_resolved_config(cli):
    code, out, _ = cli("train", "--recipe", "speedrun", "--epochs", "3", "--no-channels-last",
                       "--dry-run")
    assert code == 0
    config = TrainConfig.from_dict(json.loads(out))
    assert config == recipes.resolve("speedrun", {"epochs": 3, "channels_last": False})
    assert config.batch_size == recipes.RECIPES["speedrun"]["batch_size"]  # the recipe's value


def test_every_field_is_an_option_whose_help_shows_its_default(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for field in TrainConfig.options():
        assert "--" + field.name.replace("_", "-") in text
        assert f"(default {field.default}" in text
    assert "default 32; fast: 64" in text  # a recipe's value is shown beside the default


def test_a_new_run_never_replaces_an_earlier_one(cli, trained_run, tmp_path, short_mnist_everywhere):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    weights = (run_dir / runs.MODEL_FILE).read_bytes()
    code, _, err = cli("train", "--limit", "64", "--out", run_dir)
    assert code == 2 and err.count("\n") == 1
    assert f"{run_dir} already holds a run; choose another --out, continue it with --resume {run_dir}" in err
    assert (run_dir / runs.MODEL_FILE).read_bytes() == weights


def test_resuming_a_finished_run_asks_for_more_epochs(cli, tmp_path, short_mnist_everywhere):
    run_dir = tmp_path / "run"
    assert cli("train", "--limit", "64", "--batch-size", "32", "--out", run_dir)[0] == 0
    code, _, err = cli("train", "--resume", run_dir)
    assert code == 2 and err.count("\n") == 1
    assert "has finished its 1 epoch; to train it further, resume with more --epochs" in err
    code, out, err = cli("train", "--resume", run_dir, "--epochs", "2")
    assert code == 0 and "resuming at epoch 2, step 0 of 2" in out + err
    assert len(runs.read_metrics(run_dir)["history"]["epochs"]) == 2


def test_an_ensemble_never_replaces_an_earlier_run(trained_run, tmp_path, mnist):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    with pytest.raises(DigitnetError, match="already holds a run"):
        fit_ensemble(TrainConfig(limit=64), 2, run_dir, dataset=mnist)
    assert not (run_dir / "member-0").exists()
