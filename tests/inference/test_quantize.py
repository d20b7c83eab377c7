"""The int8 copy of model.onnx: written only when it answers as the float model does, refused
when missing, stale or changed, and twice as small."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from digitnet.errors import DigitnetError
from digitnet.inference import bundled, onnx_runtime, quantize
from digitnet.inference.export import check_onnx, export_onnx
from digitnet.inference.predictor import Predictor


@pytest.fixture(scope="module")
def reader_copy(tmp_path_factory, mnist):
    """The bundled reader exported again, int8 copy included, from 300 training images."""
    run_dir = tmp_path_factory.mktemp("int8") / "reader"
    shutil.copytree(bundled.reader_dir(), run_dir)
    (run_dir / onnx_runtime.INT8_FILE).unlink(missing_ok=True)
    export_onnx(run_dir, mnist.x_test, mnist.y_test, limit=300, calibration=mnist.x_train[:300])
    return run_dir


def test_the_int8_copy_answers_as_the_float_model_on_other_images(reader_copy, mnist):
    record = onnx_runtime.current_export(reader_copy)[1]["int8"]
    assert record["check"]["passed"] and record["check"]["images"] == 300
    assert record["calibration_images"] == 300
    int8, float32 = Predictor.from_run(reader_copy, "onnx-int8"), Predictor.from_run(reader_copy, "onnx")
    assert int8.backend == "onnx-int8" and float32.backend == "onnx"
    images = mnist.x_test[5000:6000]  # not the images it was checked on
    p8, p32 = int8.probabilities(images), float32.probabilities(images)
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= quantize.AGREEMENT
    assert 0 < np.abs(p8 - p32).max() < 0.1  # quantized, so not bit-equal, but close
    size = (reader_copy / onnx_runtime.INT8_FILE).stat().st_size
    assert size < 0.4 * (reader_copy / onnx_runtime.ONNX_FILE).stat().st_size


def test_a_changed_int8_file_is_refused_and_a_recheck_keeps_a_good_one(reader_copy, tmp_path, mnist):
    run_dir = tmp_path / "run"
    shutil.copytree(reader_copy, run_dir)
    check_onnx(run_dir, mnist.x_test, mnist.y_test, limit=100)  # the float file checked again
    assert Predictor.from_run(run_dir, "onnx-int8").backend == "onnx-int8"
    path = run_dir / onnx_runtime.INT8_FILE
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DigitnetError, match="digitnet export --run"):
        Predictor.from_run(run_dir, "onnx-int8")
    path.unlink()
    with pytest.raises(DigitnetError, match="missing, unchecked"):
        Predictor.from_run(run_dir, "onnx-int8")
    assert Predictor.from_run(run_dir, "auto").backend == "onnx"  # auto never picks int8


def test_a_copy_that_disagrees_is_not_written(reader_copy, tmp_path, mnist, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(reader_copy, run_dir)
    monkeypatch.setattr(quantize, "AGREEMENT", 1.01)  # no copy can agree this well
    export_onnx(run_dir, mnist.x_test, mnist.y_test, limit=100, calibration=mnist.x_train[:100])
    record = onnx_runtime.current_export(run_dir)[1]["int8"]
    assert record["check"]["passed"] is False and record["onnx_sha256"] is None
    assert not (run_dir / onnx_runtime.INT8_FILE).exists()
    assert not list(run_dir.glob(".model-int8.onnx*"))  # no temporary file left behind
    assert Predictor.from_run(run_dir, "onnx").backend == "onnx"  # the float export stands
