"""The int8 copy of model.onnx: written only when it answers as the float model does, refused
when missing, stale or changed, and a third of the size."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from digitnet import runs
from digitnet.errors import DigitnetError
from digitnet.inference import bundled, onnx_runtime, quantize
from digitnet.inference.export import check_onnx
from digitnet.inference.predictor import Predictor
from digitnet.runs.run import Run


@pytest.fixture
def reader_copy(tmp_path):
    """A copy of the bundled reader, safe to change."""
    run_dir = tmp_path / "reader"
    shutil.copytree(bundled.reader_dir(), run_dir)
    return run_dir


def test_the_shipped_int8_copy_is_current_and_answers_as_the_float_model(mnist):
    reader = bundled.reader_dir()
    run = Run.open(reader)
    record = run.checked_export()[1]["int8"]
    assert run.checked_int8() == reader / runs.INT8_FILE
    assert record["check"]["passed"] and record["calibration_images"] == quantize.CALIBRATION_IMAGES
    int8, float32 = Predictor.from_run(reader, "onnx-int8"), Predictor.from_run(reader, "onnx")
    assert int8.backend == "onnx-int8" and float32.backend == "onnx"
    images = mnist.x_test[5000:6000]  # not the images it was checked on
    p8, p32 = int8.probabilities(images), float32.probabilities(images)
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= quantize.AGREEMENT
    assert 0 < np.abs(p8 - p32).max() < 0.1  # quantized, so not bit-equal, but close
    size = (reader / runs.INT8_FILE).stat().st_size
    assert size < 0.4 * (reader / runs.ONNX_FILE).stat().st_size


def test_write_int8_calibrates_on_the_images_given_and_checks_on_others(reader_copy, mnist):
    (reader_copy / runs.INT8_FILE).unlink()
    record = quantize.write_int8(Run.open(reader_copy), mnist.x_train[:200], mnist.x_test[:300])
    assert record["calibration_images"] == 200 and record["check"]["images"] == 300
    assert record["check"]["passed"] and record["check"]["agreement"] >= quantize.AGREEMENT
    assert record["onnx_sha256"] == onnx_runtime.file_sha256(reader_copy / runs.INT8_FILE)
    assert record["from_onnx_sha256"] == onnx_runtime.file_sha256(reader_copy / runs.ONNX_FILE)
    assert not list(reader_copy.glob(".model-int8.onnx*"))  # no temporary file left behind


def test_a_changed_int8_file_is_refused_and_a_recheck_keeps_a_good_one(reader_copy, mnist):
    check_onnx(reader_copy, mnist.x_test, mnist.y_test, limit=100)  # the float file checked again
    assert Predictor.from_run(reader_copy, "onnx-int8").backend == "onnx-int8"
    path = reader_copy / runs.INT8_FILE
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DigitnetError, match="digitnet export --run"):
        Predictor.from_run(reader_copy, "onnx-int8")
    path.unlink()
    with pytest.raises(DigitnetError, match="missing, unchecked"):
        Predictor.from_run(reader_copy, "onnx-int8")
    assert Predictor.from_run(reader_copy, "auto").backend == "onnx"  # auto never picks int8


def test_a_copy_that_disagrees_is_not_written(reader_copy, mnist, monkeypatch):
    (reader_copy / runs.INT8_FILE).unlink()
    monkeypatch.setattr(quantize, "AGREEMENT", 1.01)  # no copy can agree this well
    record = quantize.write_int8(Run.open(reader_copy), mnist.x_train[:100], mnist.x_test[:100])
    assert record["check"]["passed"] is False and record["onnx_sha256"] is None
    assert not (reader_copy / runs.INT8_FILE).exists()
    assert not list(reader_copy.glob(".model-int8.onnx*"))  # no temporary file left behind
    # recorded as export records it: asking for the copy then says why there is none, not to
    # export again (which would make the same copy)
    run = Run.open(reader_copy)
    run.updated(export={**run.config_file["export"], "int8": record})
    with pytest.raises(DigitnetError, match=r"has no int8 copy: .* 100 test images, under the "
                                            r"101.0% needed .* use --backend onnx") as refused:
        Predictor.from_run(reader_copy, "onnx-int8")
    assert "digitnet export" not in str(refused.value)
