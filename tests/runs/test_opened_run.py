"""A run opened once: what ``serve`` reads of a run directory, and the one description of its model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from digitnet import runs
from digitnet.errors import DigitnetError
from digitnet.inference import bundled
from digitnet.inference.export import export_onnx
from digitnet.inference.predictor import Predictor
from digitnet.runs.run import Run
from digitnet.web import service, site


@pytest.fixture
def reader_copy(tmp_path) -> Path:
    """The bundled reader as a run directory of its own: config, weights, metrics, and its ONNX
    export with the first layer, as ``make reader`` left them."""
    shutil.copytree(bundled.reader_dir(), tmp_path / "reader")
    return tmp_path / "reader"


def test_serving_a_run_reads_each_of_its_files_once(reader_copy, tmp_path, monkeypatch, count_reads):
    monkeypatch.setattr(site.browser_runtime, "cached", lambda: tmp_path)  # its files are not read
    counts = count_reads(reader_copy)
    loaded = service.load_model(reader_copy, "auto")
    assert loaded.predictor.backend == "onnx" and loaded.on_device.info is not None
    assert dict(counts) == {name: 1 for name in (runs.CONFIG_FILE, runs.MODEL_FILE, runs.METRICS_FILE,
                                                 runs.ONNX_FILE, runs.FIRST_LAYER_FILE)}


def test_the_api_and_the_reader_folder_describe_the_model_alike(reader_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(site.browser_runtime, "cached", lambda: tmp_path)
    loaded = service.load_model(reader_copy, "torch")
    run = Run.open(reader_copy)
    described = run.describe()
    assert described["run"] == "reader" and described["parameters"] > 0
    assert {k: v for k, v in loaded.info.model_dump().items() if k in described} == described
    assert {k: v for k, v in loaded.on_device.info.items() if k in described} == described
    assert loaded.info.weights_sha256 == run.weights_sha256


def test_a_run_answers_as_its_files_did_before_it_was_opened_once(reader_copy):
    """The bundled reader, a run written before ``Run`` existed, gives the same probabilities
    and verdict through it as through the model rebuilt from its files."""
    run = Run.open(reader_copy)
    model, config = runs.load_model(reader_copy)
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    predictor = Predictor.from_run(run, "torch")
    expected = Predictor(model, config, reader_copy, "torch").probabilities(images)
    np.testing.assert_array_equal(predictor.probabilities(images), expected)
    record = runs.read_metrics(reader_copy)["calibration"]
    assert (run.verdict.reject, run.verdict.close) == (record["reject"], record["close"])


def test_an_export_changed_after_its_check_is_refused(reader_copy):
    onnx = reader_copy / runs.ONNX_FILE
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    run = Run.open(reader_copy)
    with pytest.raises(DigitnetError, match="not checked against the PyTorch model"):
        run.checked_export()
    assert run.checked_first_layer() is None
    assert Predictor.from_run(run).backend == "torch"  # auto falls back, saying why


def test_show_history_reads_each_file_of_the_run_once(reader_copy, tmp_path, cli, count_reads):
    counts = count_reads(reader_copy)
    code, out, err = cli("show", "history", "--run", reader_copy, "--out", tmp_path / "history.png")
    assert code == 0, err
    assert dict(counts) == {name: 1 for name in (runs.CONFIG_FILE, runs.MODEL_FILE, runs.METRICS_FILE)}


def test_what_needs_a_finished_run_refuses_one_without_metrics(reader_copy, cli):
    """A model copied without metrics.json still serves (``Run.metrics`` is {}), but it has no
    history to draw and no calibration to fit again."""
    (reader_copy / runs.METRICS_FILE).unlink()
    assert Run.open(reader_copy).metrics == {}
    code, _, err = cli("show", "history", "--run", reader_copy)
    assert code == 2 and f"{reader_copy / runs.METRICS_FILE}: missing; is {reader_copy} a digitnet" in err


def test_an_export_reads_the_weights_once_and_returns_the_run_as_recorded(trained_run, tmp_path, mnist,
                                                                          count_reads):
    """The ONNX export reads the weights and metrics once, config.json when opened and again
    under the record it writes into it (the ONNX files it writes, it reads back to check and
    hash); the run returned is the one a fresh open gives."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    counts = count_reads(run_dir)
    exported, report = export_onnx(run_dir, mnist.x_test[:100], mnist.y_test[:100], limit=100)
    read = {name: counts[name] for name in (runs.CONFIG_FILE, runs.MODEL_FILE, runs.METRICS_FILE)}
    assert read == {runs.CONFIG_FILE: 2, runs.MODEL_FILE: 1, runs.METRICS_FILE: 1}
    again = Run.open(run_dir)
    assert exported.config_file == again.config_file and exported.files == {}
    assert exported.config_file["export"]["check"] == report.to_dict()
    assert exported.checked_export()[0] == run_dir / runs.ONNX_FILE
