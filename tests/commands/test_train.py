"""``digitnet train``'s options come from TrainConfig: one place for every default."""

from __future__ import annotations

import json

import pytest

from digitnet.cli import main
from digitnet.runs.config import TrainConfig
from digitnet.training import recipes


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
