"""ONNX export: the file, its metadata, the dynamic batch, and the parity check."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from safetensors.torch import load_file, save_file

from digitnet import runs
from digitnet.errors import DigitnetError
from digitnet.inference import export, onnx_runtime
from digitnet.inference.export import PARITY_TOLERANCE, check_onnx, compare
from digitnet.inference.predictor import Predictor
from digitnet.preprocess import input_array
from digitnet.runs.run import Run


@pytest.fixture
def run_copy(exported_run, tmp_path):
    """A private copy of the exported run, safe to damage."""
    path = tmp_path / "run"
    shutil.copytree(exported_run[0], path)
    return path


def test_export_command_writes_and_checks(exported_run):
    run_dir, code, out, err = exported_run
    assert code == 0, err
    assert err == ""
    lines = out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(f"wrote {run_dir / 'model.onnx'}")
    assert "same class for 100.0%" in lines[1]
    # a model trained for a few steps may answer on a hair: its int8 copy is written or refused
    assert re.match(rf"(wrote {re.escape(str(run_dir / 'model-int8.onnx'))}: int8|no model-int8.onnx: )",
                    lines[2]), lines[2]
    assert lines[3].startswith(f"wrote {run_dir / 'first-layer.onnx'}: the first layer (conv1) for ")
    assert "checked on 100 images" in lines[3]
    assert not list(run_dir.glob(".model.onnx.*"))  # no temporary file left behind
    assert not list(run_dir.glob(".first-layer.onnx.*"))
    assert not list(run_dir.glob(".model-int8.onnx.*"))


def test_the_first_layer_gives_the_feature_maps_pytorch_computes(exported_run, mnist):
    """first-layer.onnx maps images to the feature maps ``explain`` shows, for any batch."""
    import onnxruntime as ort
    import torch

    from digitnet.inference.explain import first_layer

    run_dir = exported_run[0]
    found = Run.open(run_dir).checked_first_layer()
    assert found is not None
    path, record = found
    assert (record["layer"], record["kinds"], record["channels"]) == ("conv1", ["Conv2d"], 32)
    assert record["check"]["passed"] and record["check"]["max_abs_diff"] <= export.FIRST_LAYER_TOLERANCE
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    maps = session.run(["feature_maps"], {"input": input_array(mnist.x_test[200:203])})[0]
    assert maps.shape == (3, 32, 26, 26)  # a 3x3 convolution without padding
    net, _ = runs.load_model(run_dir)
    expected = first_layer(net.eval(), torch.from_numpy(input_array(mnist.x_test[202:203])))
    np.testing.assert_allclose(maps[2], expected.values, atol=1e-5)


def test_a_first_layer_changed_after_its_check_is_not_offered(run_copy):
    assert Run.open(run_copy).checked_first_layer() is not None
    path = run_copy / "first-layer.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    assert Run.open(run_copy).checked_first_layer() is None


def test_onnx_file_metadata_and_config(exported_run):
    run_dir = exported_run[0]
    model = onnx.load(str(run_dir / "model.onnx"))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["layout"] == "NCHW" and meta["scale"] == "[0, 1]"
    assert json.loads(meta["classes"]) == [str(d) for d in range(10)]
    assert meta["run"] == run_dir.name
    assert meta["digitnet_version"]
    assert meta["weights_sha256"] == Run.open(run_dir).weights_sha256
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # symbolic, not fixed

    _, config = runs.read_config(run_dir)
    export = config["export"]
    assert export["input"]["layout"] == "NCHW" and export["input"]["shape"] == ["batch", 1, 28, 28]
    assert export["weights_sha256"] == meta["weights_sha256"]
    assert export["check"]["passed"] and export["check"]["images"] == 1000
    assert export["check"]["max_abs_diff"] <= PARITY_TOLERANCE


@pytest.mark.parametrize("batch", [1, 37, 1000, 4097])
def test_dynamic_batch_in_plain_onnxruntime(exported_run, mnist, batch):
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported_run[0] / "model.onnx"), providers=["CPUExecutionProvider"])
    x = input_array(mnist.x_test[:batch])  # (batch, 1, 28, 28)
    p = session.run(["probabilities"], {"input": x})[0]
    assert p.shape == (batch, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert (p.argmax(1) == mnist.y_test[:batch]).mean() > 0.9


def test_check_catches_an_altered_onnx_model(run_copy, mnist):
    path = run_copy / "model.onnx"
    model = onnx.load(str(path))
    # The last layer's bias (10,): favour class 0 everywhere; the metadata stays intact, so
    # only the numerical comparison can notice.
    bias = next(t for t in model.graph.initializer if numpy_helper.to_array(t).shape == (10,))
    altered = numpy_helper.to_array(bias).copy()
    altered[0] += 5.0
    bias.CopyFrom(numpy_helper.from_array(altered, bias.name))
    path.write_bytes(model.SerializeToString())

    with pytest.raises(DigitnetError, match=r"does not match the PyTorch model on 1000 images") as e:
        check_onnx(run_copy, mnist.x_test, mnist.y_test)
    assert "\n" not in str(e.value)
    assert not path.exists()
    assert runs.read_config(run_copy)[1]["export"] is None


def test_check_refuses_an_export_of_other_weights(run_copy, mnist):
    weights = run_copy / "model.safetensors"
    tensors = load_file(weights)
    tensors["conv1.weight"][0, 0, 0, 0] += 0.5
    save_file(tensors, weights, metadata={"format": "digitnet"})
    with pytest.raises(DigitnetError, match="exported from other weights"):
        check_onnx(run_copy, mnist.x_test, mnist.y_test)
    assert not (run_copy / "model.onnx").exists()


def test_compare_counts_disagreements():
    p = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    q = p.copy()
    q[3] = np.eye(10, dtype=np.float32)[4]  # the last image flips to class 4
    report = compare(p, q, np.array([0, 1, 2, 3]))
    assert report.agreement == 0.75 and report.accuracy == 1.0 and report.torch_accuracy == 0.75
    assert report.max_abs_diff == 1.0 and not report.passed()
    assert compare(p, p + 5e-5, np.arange(4)).passed()


def test_export_without_a_run_is_one_line(cli, tmp_path):
    code, out, err = cli("export", "--run", tmp_path / "nowhere")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no such run directory" in err


def test_an_unchecked_model_onnx_is_never_run(run_copy):
    # the file is intact and from these weights, but config.json has no passed check for it
    runs.update_config(run_copy, export=None)
    with pytest.raises(DigitnetError, match="not checked against the PyTorch model"):
        Predictor.from_run(run_copy, "onnx")
    auto = Predictor.from_run(run_copy, "auto")
    assert auto.backend == "torch" and "not checked" in auto.note


def test_a_model_onnx_changed_after_its_check_is_not_run(run_copy):
    path = run_copy / "model.onnx"
    path.write_bytes(path.read_bytes() + b"\0")  # same weights hash in its metadata, other bytes
    assert Predictor.from_run(run_copy, "auto").backend == "torch"


def test_an_export_interrupted_during_its_check_leaves_no_model_onnx(trained_run, tmp_path, mnist,
                                                                      monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    (run_dir / "model.onnx").unlink(missing_ok=True)

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "compare", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export_onnx(run_dir, mnist.x_test, mnist.y_test, limit=50)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in trained_run.iterdir())
    assert Predictor.from_run(run_dir, "auto").backend == "torch"


def test_export_records_the_checked_file(exported_run):
    run_dir = exported_run[0]
    export_record = runs.read_config(run_dir)[1]["export"]
    assert export_record["checked"] is True
    assert export_record["onnx_sha256"] == onnx_runtime.file_sha256(run_dir / "model.onnx")
    assert Predictor.from_run(run_dir, "auto").backend == "onnx"


def test_bench_exports_through_the_checked_path(trained_run, tmp_path, mnist, monkeypatch):
    from digitnet.benchmarks import runner

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    monkeypatch.setattr(export, "compare", lambda *_: export.ParityReport(50, 1.0, 0.5, 0.1, 0.9))
    opts = runner.BenchOptions.quick()
    with pytest.raises(DigitnetError, match="does not match the PyTorch model"):
        runner.bench_inference(run_dir, mnist.x_test[:50], mnist.y_test[:50], opts, mnist.x_train[:50])
    assert not (run_dir / "model.onnx").exists()
