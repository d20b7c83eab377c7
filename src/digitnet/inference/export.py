"""Exporting a run's model to ONNX, and checking the export against the PyTorch model.

``export_onnx`` writes ``RUN_DIR/model.onnx``: the network with its softmax, so the file maps
float32 images (N, 1, 28, 28) in [0, 1] to probabilities (N, 10), with a dynamic batch axis.
The export is written under a temporary name and run through onnxruntime and PyTorch side by
side on test images; only when they agree is it renamed into place and recorded in
config.json as checked, with the SHA-256 of the file and of the weights. ``open_session``
refuses any model.onnx without that record, so an export that failed its check, was
interrupted during it, or was changed afterwards is never run.

Given training images to calibrate on, ``model-int8.onnx`` is written too: the same model
quantized to int8 and checked to answer as model.onnx does (``inference.quantize``).

Beside them, ``first-layer.onnx`` is the network's first layer alone (``explain.first_layer``:
the first convolution with the batch norm and activation right after it), images to feature
maps (N, C, H, W), for the page to show what the network sees on the device; it is checked
the same way against the feature maps PyTorch computes inside the whole network.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from digitnet import __version__, atomic, runs
from digitnet.errors import DigitnetError
from digitnet.inference import explain, onnx_runtime, quantize
from digitnet.inference.predictor import Predictor
from digitnet.models import probabilities
from digitnet.preprocess import input_tensor
from digitnet.runs.run import Run

FORMATS = ("onnx",)
PARITY_IMAGES = 1000
PARITY_TOLERANCE = 1e-4  # max |p_onnx - p_torch| over all images and classes
FIRST_LAYER_IMAGES = 100  # the first layer's check: its maps are 784 values per channel each
FIRST_LAYER_TOLERANCE = 1e-4  # max |map_onnx - map_torch|, maps being of the order of 1
OPSET = 20


class WithSoftmax(nn.Module):
    """The run's network plus the softmax its users want: (N, 1, 28, 28) -> (N, 10) probabilities."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return probabilities(self.net(x))


@contextlib.contextmanager
def quiet_exporter():
    """The exporter logs and warns about things irrelevant here (e.g. torchvision ops absent)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnx_bytes(net: nn.Module, meta: dict[str, str]) -> bytes:
    """Serialized ONNX model of ``net`` with its softmax; ``meta`` goes into metadata_props."""
    return to_onnx(WithSoftmax(net), onnx_runtime.OUTPUT_NAME, meta,
                   f"probabilities (batch, {len(json.loads(meta['classes']))})")


def to_onnx(module: nn.Module, output: str, meta: dict[str, str], what: str) -> bytes:
    """Serialized ONNX model of ``module``, images (batch, 1, 28, 28) -> ``output``, described
    in its doc string as ``what``; ``meta`` goes into metadata_props."""
    example = torch.rand(2, *onnx_runtime.INPUT_SHAPE)  # batch 2, so the batch axis stays symbolic
    # No upper bound on the batch: the ONNX graph only names the axis "batch", any size runs.
    batch = torch.export.Dim("batch", min=1)
    with quiet_exporter():
        try:
            program = torch.onnx.export(
                module.eval(), (example,), input_names=[onnx_runtime.INPUT_NAME],
                output_names=[output], dynamic_shapes=({0: batch},),
                opset_version=OPSET, dynamo=True, verbose=False,
            )
        except Exception as e:  # the exporter raises many types; the user needs one line
            raise DigitnetError(f"ONNX export failed ({type(e).__name__}: {str(e)[:160]}); "
                                "check that onnx and onnxscript are installed") from e
    proto = program.model_proto
    proto.doc_string = f"digitnet: images float32 (batch, 1, 28, 28) in [0, 1] -> {what}"
    # The exporter notes on each node the Python stack that made it, with this machine's paths
    # and line numbers: dropped, so the file says nothing of where it was built and the same
    # weights give the same bytes.
    for node in proto.graph.node:
        del node.metadata_props[:]
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def _parity_set(images: np.ndarray, labels: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images)[:limit], np.asarray(labels)[:limit]
    if len(images) == 0:
        raise DigitnetError("no images to check the ONNX model on; check the dataset")
    return images, labels


def _parity(run: Run, onnx_path: Path, images: np.ndarray, labels: np.ndarray) -> ParityReport:
    """The ONNX file at ``onnx_path`` (checked or not) against the run's PyTorch model."""
    torch_predictor = Predictor.from_run(run, "torch")
    session = onnx_runtime.load_session(onnx_path, run)
    onnx_predictor = Predictor(torch_predictor.model, torch_predictor.config, run.path, "onnx",
                               session=session)
    return compare(onnx_predictor.probabilities(images), torch_predictor.probabilities(images), labels)


def _mismatch(path: Path, run_dir: Path, report: ParityReport) -> DigitnetError:
    return DigitnetError(
        f"{path}: does not match the PyTorch model on {report.images} images (classes agree on "
        f"{report.agreement:.1%}, max probability difference {report.max_abs_diff:.1e} > "
        f"{PARITY_TOLERANCE:.0e}); removed it, run 'digitnet export --run {run_dir}' again"
    )


def _record(run: Run, report: ParityReport, first_layer: dict | None, int8: dict | None = None) -> Run:
    """Record in config.json the layout of the model.onnx now in place and its passed check,
    ``first_layer``, the record of the first-layer.onnx beside it, and ``int8``, that of its
    int8 copy (None: there is none); returns the run as now recorded."""
    path, classes = run.path / runs.ONNX_FILE, run.config.classes
    return run.updated(export={
        "format": "onnx", "file": runs.ONNX_FILE, "opset": OPSET,
        "input": {"name": onnx_runtime.INPUT_NAME, **onnx_runtime.LAYOUT},
        "output": {"name": onnx_runtime.OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(classes)],
                   "meaning": "softmax probabilities"},
        "classes": list(classes), "weights_sha256": run.weights_sha256,
        "onnx_sha256": onnx_runtime.file_sha256(path), "checked": True, "check": report.to_dict(),
        "first_layer": first_layer, "int8": int8, "digitnet_version": __version__,
    })


def export_onnx(run: Run | str | Path, images: np.ndarray, labels: np.ndarray,
                limit: int = PARITY_IMAGES, calibration: np.ndarray | None = None
                ) -> tuple[Run, ParityReport]:
    """Write the run's model.onnx, checked on the first ``limit`` images (uint8 (N, 28, 28)),
    and with ``calibration`` (training images, uint8 (N, 28, 28)) its int8 copy, checked on
    the same images; returns the run as now recorded (config.json's "export") and the check.

    ``run``: a ``Run`` (only its weights and config are used: the files it read before are of
    the export replaced) or its directory. A file only takes its name once it has passed its
    check; a failed or interrupted check leaves the previous file (or none) and no temporary file.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    path = run.path / runs.ONNX_FILE
    (run.path / runs.INT8_FILE).unlink(missing_ok=True)  # made from the model.onnx replaced
    report = write_checked(run, path, images, labels, limit)
    first_layer = write_first_layer(run, run.path / runs.FIRST_LAYER_FILE, images)
    exported = _record(run, report, first_layer)
    if calibration is not None:  # from the run as recorded now, its new model.onnx checked
        int8 = quantize.write_int8(exported, calibration, _parity_set(images, labels, limit)[0])
        exported = _record(run, report, first_layer, int8)
    return exported, report


def write_checked(run: Run, path: Path, images: np.ndarray, labels: np.ndarray,
                  limit: int = PARITY_IMAGES) -> ParityReport:
    """Write the run's model as ONNX to ``path`` (anywhere: the run directory or a static site),
    renamed into place only once it has passed the check on the first ``limit`` images."""
    images, labels = _parity_set(images, labels, limit)
    meta = onnx_runtime.metadata(run, __version__)
    with atomic.atomic_open(path, "wb") as f:
        f.write(onnx_bytes(run.model(), meta))
        f.flush()
        report = _parity(run, Path(f.name), images, labels)
        if not report.passed():
            raise _mismatch(path, run.path, report)
    return report


def write_first_layer(run: Run, path: Path, images: np.ndarray,
                      limit: int = FIRST_LAYER_IMAGES) -> dict[str, Any]:
    """Write the run's first layer as ONNX to ``path``, renamed into place only once its maps
    match, on the first ``limit`` images, the ones PyTorch computes inside the whole network;
    returns its record (what config.json and the page's model.json say of it)."""
    images = np.asarray(images)[:limit]
    if len(images) == 0:
        raise DigitnetError("no images to check the first layer's ONNX model on; check the dataset")
    x = input_tensor(images)  # (N, 1, 28, 28)
    modules, expected = explain.first_layer_modules(run.model(), x)  # (N, C, 28, 28)
    layer, kinds = explain.describe(modules)
    meta = {**onnx_runtime.metadata(run, __version__),
            "output": f"{onnx_runtime.FEATURES_NAME}: float32 (batch, {expected.shape[1]}, "
                      f"{expected.shape[2]}, {expected.shape[3]}), the feature maps of {layer}"}
    with atomic.atomic_open(path, "wb") as f:
        f.write(to_onnx(nn.Sequential(*(m for _, m in modules)), onnx_runtime.FEATURES_NAME, meta,
                        f"the first layer's feature maps (batch, {', '.join(map(str, expected.shape[1:]))})"))
        f.flush()
        session = onnx_runtime.new_session(Path(f.name), run.path)
        got = session.run([onnx_runtime.FEATURES_NAME], {onnx_runtime.INPUT_NAME: x.numpy()})[0]
        if got.shape != tuple(expected.shape):
            raise DigitnetError(f"{path}: gives maps of shape {got.shape}, not {tuple(expected.shape)}; "
                                f"run 'digitnet export --run {run.path}' again")
        diff = float(np.abs(got - expected.numpy()).max())
        if diff > FIRST_LAYER_TOLERANCE:
            raise DigitnetError(f"{path}: its feature maps differ from PyTorch's by up to {diff:.1e} "
                                f"(> {FIRST_LAYER_TOLERANCE:.0e}): {layer} does not take the image "
                                "directly; the page cannot show this model's feature maps")
    return {"file": path.name, "input": onnx_runtime.INPUT_NAME, "output": onnx_runtime.FEATURES_NAME,
            "layer": layer, "kinds": list(kinds), "channels": int(expected.shape[1]),
            "onnx_sha256": onnx_runtime.file_sha256(path),
            "check": {"images": len(images), "max_abs_diff": diff, "tolerance": FIRST_LAYER_TOLERANCE,
                      "passed": True}}


def discard(run_dir: Path) -> None:
    """Remove a model.onnx that failed its check, the first layer exported with it, and their
    record in config.json."""
    (run_dir / runs.ONNX_FILE).unlink(missing_ok=True)
    (run_dir / runs.FIRST_LAYER_FILE).unlink(missing_ok=True)
    (run_dir / runs.INT8_FILE).unlink(missing_ok=True)
    runs.update_config(run_dir, export=None)


@dataclass
class ParityReport:
    """How model.onnx compares with the PyTorch model on the same images."""

    images: int
    max_abs_diff: float  # over all images and classes
    agreement: float  # fraction of images with the same predicted class
    accuracy: float  # of the ONNX model against the labels
    torch_accuracy: float

    def passed(self) -> bool:
        return self.agreement == 1.0 and self.max_abs_diff <= PARITY_TOLERANCE

    def to_dict(self) -> dict:
        return {**asdict(self), "tolerance": PARITY_TOLERANCE, "passed": self.passed()}


def compare(p_onnx: np.ndarray, p_torch: np.ndarray, labels: np.ndarray) -> ParityReport:
    """Both (N, 10) probability arrays against each other and against labels (N,)."""
    a, b = p_onnx.argmax(1), p_torch.argmax(1)
    return ParityReport(
        images=len(labels), max_abs_diff=float(np.abs(p_onnx - p_torch).max(initial=0.0)),
        agreement=float((a == b).mean()), accuracy=float((a == labels).mean()),
        torch_accuracy=float((b == labels).mean()),
    )


def _current_int8_record(run: Run) -> dict | None:
    try:
        run.checked_int8()
    except DigitnetError:
        return None
    return run.config_file["export"]["int8"]


def check_onnx(run_dir: str | Path, images: np.ndarray, labels: np.ndarray,
               limit: int = PARITY_IMAGES) -> ParityReport:
    """Check the model.onnx already in RUN_DIR again, on the first ``limit`` images.

    On any failure model.onnx is removed and a DigitnetError says why; on success it is
    recorded as checked in config.json, as ``export_onnx`` does.
    """
    run_dir = runs.check_run_dir(run_dir)
    path = run_dir / runs.ONNX_FILE
    images, labels = _parity_set(images, labels, limit)
    try:
        run = Run.open(run_dir)
        report = _parity(run, path, images, labels)
    except DigitnetError as e:
        discard(run_dir)
        raise DigitnetError(f"{e} (removed it)") from e
    if not report.passed():
        discard(run_dir)
        raise _mismatch(path, run_dir, report)
    first_layer = run.checked_first_layer()  # checked already: kept as they are
    _record(run, report, first_layer and first_layer[1], _current_int8_record(run))
    return report
