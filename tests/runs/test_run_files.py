"""Run directories: atomic writes, safe loading, refusing damaged or mismatched files."""

from __future__ import annotations

import errno
import os
import shutil

import pytest
import torch
from safetensors.torch import save_file

from digitnet import atomic, runs
from digitnet.errors import DigitnetError
from digitnet.models import TutorialCNN
from digitnet.runs.config import TrainConfig
from digitnet.training import checkpoints


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "a.json"
    atomic.write_json(path, {"x": 1})
    with pytest.raises(RuntimeError), atomic.atomic_open(path) as f:
        f.write(b"half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == '{\n  "x": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_folder_that_cannot_be_made_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "plain-file").write_text("not a folder")
    target = tmp_path / "plain-file" / "run" / "metrics.json"
    with pytest.raises(DigitnetError, match=f"folder {target.parent}: .*plain-file is a file, not a folder"):
        atomic.write_json(target, {"x": 1})


def test_a_folder_is_checked_before_the_work_and_nothing_is_made(tmp_path, monkeypatch):
    atomic.check_folder(tmp_path / "a" / "b")  # may be made: nothing to say, nothing made yet
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "plain-file").write_text("not a folder")
    with pytest.raises(DigitnetError, match="plain-file is a file, not a folder; choose a folder"):
        atomic.check_folder(tmp_path / "plain-file" / "run")
    monkeypatch.setattr(os, "access", lambda *a: False)  # as for a user without write permission
    with pytest.raises(DigitnetError, match=f"{tmp_path} is not writable; choose a folder"):
        atomic.check_folder(tmp_path / "run")


def test_a_full_disk_keeps_the_previous_file_and_says_so(tmp_path):
    path = tmp_path / "a.json"
    atomic.write_json(path, {"x": 1})
    with pytest.raises(DigitnetError, match="free some space.*unchanged"), atomic.atomic_open(path) as f:
        f.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert path.read_text() == '{\n  "x": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.fixture
def run_copy(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def test_save_and_load_model_round_trip(tmp_path):
    model, config = TutorialCNN(), TrainConfig(epochs=3)
    tmp_path.mkdir(exist_ok=True)
    runs.write_config(tmp_path, config, dataset_sha256={}, parameters=600_810)
    runs.save_model(tmp_path, model, config)
    loaded, loaded_config = runs.load_model(tmp_path)
    assert loaded_config == config and not loaded.training
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_refuses_truncated_weights(run_copy):
    path = run_copy / runs.MODEL_FILE
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DigitnetError, match="corrupt weights"):
        runs.load_model(run_copy)


def test_refuses_mismatched_weights(run_copy):
    save_file({"conv1.weight": torch.zeros(16, 1, 3, 3)}, str(run_copy / runs.MODEL_FILE))
    with pytest.raises(DigitnetError, match="do not match"):
        runs.load_model(run_copy)


def test_refuses_model_args_that_do_not_fit_the_architecture(run_copy, cli):
    """An edited config.json is one line from the CLI, never a TypeError traceback."""
    import json

    path = run_copy / runs.CONFIG_FILE
    saved = json.loads(path.read_text())
    saved["config"]["model_args"] = {"no_such_argument": 3}
    path.write_text(json.dumps(saved))
    with pytest.raises(DigitnetError, match="model_args do not fit"):
        runs.load_model(run_copy)
    code, _, err = cli("evaluate", "--run", run_copy)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "model_args" in err


def test_refuses_missing_and_damaged_files(run_copy, tmp_path):
    with pytest.raises(DigitnetError, match="no such run directory"):
        runs.load_model(tmp_path / "missing")
    (run_copy / runs.CONFIG_FILE).write_text("{not json")
    with pytest.raises(DigitnetError, match="unreadable config"):
        runs.load_model(run_copy)


def test_checkpoint_round_trip_keeps_optimizer_and_rng(tmp_path):
    model = TutorialCNN()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 1, 28, 28)).sum().backward()
    optimizer.step()
    rng = torch.get_rng_state()
    ckpt = checkpoints.Checkpoint(epoch=1, step=5, model=model.state_dict(),
                           optimizer=optimizer.state_dict(), rng={"torch": rng},
                           history={"epochs": []}, train_seconds=1.5)
    checkpoints.save_checkpoint(tmp_path, ckpt, TrainConfig())
    loaded, config = checkpoints.load_checkpoint(tmp_path)
    assert (loaded.epoch, loaded.step, loaded.train_seconds) == (1, 5, 1.5)
    fresh = torch.optim.Adam(TutorialCNN().parameters())
    fresh.load_state_dict(loaded.optimizer)
    original, restored = optimizer.state_dict()["state"], fresh.state_dict()["state"]
    assert original.keys() == restored.keys()
    for key, state in original.items():
        assert torch.equal(state["exp_avg_sq"], restored[key]["exp_avg_sq"])
        assert torch.equal(state["step"], restored[key]["step"])
    assert torch.equal(loaded.rng["torch"], rng)
