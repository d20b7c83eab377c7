"""Recipes resolve to configs, options override them, and each one trains on a subset."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from digitnet import runs
from digitnet.errors import DigitnetError
from digitnet.evaluate import evaluate
from digitnet.preprocess import input_tensor
from digitnet.runs.config import TrainConfig
from digitnet.runs.run import Run
from digitnet.training import recipes
from digitnet.training.ensemble import average_probabilities, fit_ensemble, member_dir
from digitnet.training.run import fit

SUBSET = {"limit": 600, "epochs": 1, "precision": "fp32", "eval_batch_size": 1000}


@pytest.fixture(scope="module")
def small(mnist):
    """MNIST with a 1,000-image test set: these tests check behaviour, not accuracy levels."""
    return dataclasses.replace(mnist, x_test=mnist.x_test[:1000], y_test=mnist.y_test[:1000])


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_each_recipe_resolves_and_records_its_name(name):
    config = recipes.resolve(name)
    assert config.recipe == name
    for key, value in recipes.RECIPES[name].items():
        if key != "model_args":
            assert getattr(config, key) == value
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_tutorial_recipe_is_the_tutorial_defaults():
    assert recipes.resolve("tutorial") == TrainConfig()
    assert recipes.resolve("fast").model == "tutorial_cnn"  # fast keeps the tutorial's network


def test_overrides_win_over_recipe_values():
    config = recipes.resolve("fast", {"batch_size": 64, "epochs": 5})
    assert (config.batch_size, config.epochs) == (64, 5)
    assert config.lr == recipes.RECIPES["fast"]["lr"]  # untouched values stay the recipe's


def test_another_model_leaves_the_recipes_model_args_behind():
    # accurate's widths are reader_net's four; speedrun_net takes three
    config = recipes.resolve("accurate", {"model": "speedrun_net"})
    assert config.model_args == {}
    assert recipes.resolve("fast", {"model": "tutorial_cnn"}).model_args  # its own model keeps them
    mine = {"width": [8, 16, 32]}
    assert recipes.resolve("accurate", {"model": "speedrun_net", "model_args": mine}).model_args == mine


def test_unknown_recipe_is_one_clear_error():
    with pytest.raises(DigitnetError, match="unknown recipe 'turbo'"):
        recipes.resolve("turbo")


# The reader adds negatives and a validation split: tests/training/test_reader.py covers it.
@pytest.mark.parametrize("name", [name for name in recipes.RECIPES if name != "reader"])
def test_each_recipe_trains_on_a_subset(name, small, tmp_path):
    config = recipes.resolve(name, {**SUBSET, "batch_size": 100})
    metrics = fit(config, tmp_path / name, dataset=small)
    assert metrics["epochs_run"] == 1 and metrics["train_images"] == 600
    # 6 steps are too few for an accuracy level (BatchNorm statistics are barely estimated);
    # what must hold is a finite loss and a saved model that measures as the run reported
    assert torch.isfinite(torch.tensor(metrics["test_loss"]))
    model, saved_config = runs.load_model(tmp_path / name)
    again = evaluate(model, input_tensor(small.x_test), torch.from_numpy(small.y_test).long())
    assert again.accuracy == pytest.approx(metrics["test_accuracy"])
    assert saved_config == config
    saved = json.loads((tmp_path / name / "config.json").read_text())["config"]
    assert saved["recipe"] == name and saved["batch_size"] == 100


def test_cli_recipe_with_override(cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli("train", "--recipe", "speedrun", "--limit", "500", "--batch-size", "100",
                       "--out", out)
    assert code == 0, err
    config, _ = runs.read_config(out)
    assert (config.recipe, config.model, config.batch_size) == ("speedrun", "speedrun_net", 100)


def test_target_accuracy_stops_early_on_validation(small, tmp_path):
    config = TrainConfig(limit=3000, validation=1000, epochs=4, batch_size=50, precision="fp32",
                         target_accuracy=0.5)
    metrics = fit(config, tmp_path / "run", dataset=small)
    # one epoch of 40 steps reaches ~85% on validation (measured), far above the 0.5 target
    assert metrics["epochs_run"] < config.epochs
    assert metrics["train_images"] == 2000
    last = metrics["history"]["epochs"][-1]
    assert last["val_accuracy"] >= 0.5 and "test_accuracy" not in last
    assert 0 < metrics["test_accuracy"] <= 1  # the test set is measured once, at the end


def test_target_accuracy_without_validation_never_stops_early(small, tmp_path):
    config = TrainConfig(limit=400, epochs=2, batch_size=100, precision="fp32", target_accuracy=0.01)
    assert fit(config, tmp_path / "run", dataset=small)["epochs_run"] == 2


def test_ensemble_averages_its_members(small, tmp_path):
    config = TrainConfig(**SUBSET, batch_size=50)
    metrics = fit_ensemble(config, 2, tmp_path / "ens", dataset=small)
    assert [m["seed"] for m in metrics["members"]] == [0, 1]
    models = [runs.load_model(member_dir(tmp_path / "ens", k))[0] for k in range(2)]
    probs = average_probabilities(models, input_tensor(small.x_test))
    expected = (probs.argmax(1) == torch.from_numpy(small.y_test).long()).float().mean().item()
    assert metrics["test_accuracy"] == pytest.approx(expected)
    assert metrics["members"][0]["test_accuracy"] != metrics["members"][1]["test_accuracy"]
    assert runs.read_metrics(tmp_path / "ens")["ensemble"] == 2
    # the folder itself has no weights: opening it names a member to use instead
    for open_run in (Run.open, runs.load_model):
        with pytest.raises(DigitnetError, match=r"ensemble of 2 runs.*--run .*ens/member-0"):
            open_run(tmp_path / "ens")


def test_ensemble_needs_two_members(tmp_path):
    with pytest.raises(DigitnetError, match="at least 2"):
        fit_ensemble(TrainConfig(), 1, tmp_path)
