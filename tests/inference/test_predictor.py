"""Predictor backends: onnx and torch give the same probabilities; bad model.onnx files are refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from digitnet.benchmarks import timing
from digitnet.errors import DigitnetError
from digitnet.inference import bundled
from digitnet.inference.predictor import BACKENDS, DEFAULT_BACKEND, RUNTIMES, Predictor
from digitnet.preprocess import input_array


@pytest.fixture
def run_copy(exported_run, tmp_path):
    path = tmp_path / "run"
    shutil.copytree(exported_run[0], path)
    return path


def test_every_backend_choice_loads_and_classifies(mnist):
    # each choice the CLI offers (--backend) runs on a real runtime, on the bundled reader (its
    # int8 copy included); the default is "auto", which never picks int8
    reader = bundled.reader_dir()
    answers = {}
    for backend in BACKENDS:
        predictor = Predictor.from_run(reader, backend)
        assert predictor.backend in RUNTIMES
        answers[backend] = predictor.probabilities(mnist.x_test[:20]).argmax(1)
    assert Predictor.from_run(reader, "onnx-int8").backend == "onnx-int8"
    assert Predictor.from_run(reader).backend == Predictor.from_run(reader, DEFAULT_BACKEND).backend == "onnx"
    for backend in BACKENDS:
        np.testing.assert_array_equal(answers[backend], answers["torch"])


def test_onnx_and_torch_agree_on_test_images(exported_run, mnist):
    images = mnist.x_test[:1000]
    p_onnx = Predictor.from_run(exported_run[0], "onnx").probabilities(images)
    p_torch = Predictor.from_run(exported_run[0], "torch").probabilities(images)
    assert p_onnx.shape == p_torch.shape == (1000, 10) and p_onnx.dtype == p_torch.dtype == np.float32
    assert np.abs(p_onnx - p_torch).max() < 1e-4
    assert (p_onnx.argmax(1) == p_torch.argmax(1)).all()
    assert (p_onnx.argmax(1) == mnist.y_test[:1000]).mean() > 0.9


def test_batches_split_and_single_images(exported_run, mnist):
    for backend in ("torch", "onnx"):
        predictor = Predictor.from_run(exported_run[0], backend)
        predictor.batch_size = 300  # 1,000 images in 4 pieces, the last one short
        whole = predictor.probabilities(mnist.x_test[:1000])
        single = predictor.probabilities(mnist.x_test[7])  # (28, 28) -> (1, 10)
        np.testing.assert_allclose(single[0], whole[7], atol=1e-5)
        assert predictor.probabilities(mnist.x_test[:0]).shape == (0, 10)


def test_auto_uses_onnx_only_when_exported(exported_run, trained_run):
    assert Predictor.from_run(exported_run[0]).backend == "onnx"
    fallback = Predictor.from_run(trained_run, "auto")
    assert fallback.backend == "torch" and "digitnet export" in fallback.note


def test_onnx_backend_without_export_says_how(trained_run):
    with pytest.raises(DigitnetError, match=r"model.onnx: missing; run 'digitnet export"):
        Predictor.from_run(trained_run, "onnx")


@pytest.mark.parametrize("damage", [b"", b"not an onnx model at all", "truncate"])
def test_corrupt_onnx_refused_in_one_line(run_copy, damage):
    path = run_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:5000] if damage == "truncate" else damage)
    with pytest.raises(DigitnetError, match="not a readable ONNX model") as e:
        Predictor.from_run(run_copy, "onnx")
    assert "\n" not in str(e.value)
    auto = Predictor.from_run(run_copy)
    assert auto.backend == "torch" and "not a readable ONNX model" in auto.note


def test_stale_onnx_not_used_after_the_weights_change(run_copy, mnist):
    weights = run_copy / "model.safetensors"
    tensors = load_file(weights)
    tensors["dense2.bias"][3] += 30.0  # now the run's model favours class 3
    save_file(tensors, weights, metadata={"format": "digitnet"})
    with pytest.raises(DigitnetError, match="exported from other weights"):
        Predictor.from_run(run_copy, "onnx")
    auto = Predictor.from_run(run_copy)
    assert auto.backend == "torch"
    # what auto predicts is the new weights' answer, not the old export's
    p = auto.probabilities(mnist.x_test[:200])
    assert (p.argmax(1) == 3).mean() > 0.5


def test_torch_single_image_threads_restored(trained_run, mnist):
    before = torch.get_num_threads()
    Predictor.from_run(trained_run, "torch").probabilities(mnist.x_test[0])
    assert torch.get_num_threads() == before


def test_bf16_close_to_fp32(trained_run, mnist):
    images = mnist.x_test[:200]
    fp32 = Predictor.from_run(trained_run, "torch").probabilities(images)
    bf16 = Predictor.from_run(trained_run, "torch", precision="bf16").probabilities(images)
    assert bf16.dtype == np.float32
    assert (fp32.argmax(1) == bf16.argmax(1)).mean() >= 0.98  # bf16 keeps 8 bits of mantissa


def test_unknown_backend_and_bad_shapes(trained_run):
    with pytest.raises(DigitnetError, match="unknown backend 'tensorrt'"):
        Predictor.from_run(trained_run, "tensorrt")
    with pytest.raises(DigitnetError, match=r"expected 28x28 images"):
        input_array(np.zeros((2, 32, 32), np.uint8))


def test_timing_measures_a_predictor(exported_run, mnist):
    predictor = Predictor.from_run(exported_run[0], "onnx")
    result = timing.measure(predictor.probabilities, mnist.x_test[:200], batch=200, calls=20, repeats=1)
    assert result["batch"] == 200 and result["images_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
