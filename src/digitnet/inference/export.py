"""Exporting a run's model to ONNX, and checking the export against the PyTorch model.

``export_onnx`` writes ``RUN_DIR/model.onnx``: the network with its softmax, so the file maps
float32 images (N, 1, 28, 28) in [0, 1] to probabilities (N, 10), with a dynamic batch axis.
``check_onnx`` then runs onnxruntime and PyTorch side by side on test images; a model.onnx that
disagrees is removed, so nothing ever uses an unchecked export by accident.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitnet import __version__, atomic
from digitnet.errors import DigitnetError
from digitnet.inference import onnx_runtime
from digitnet.inference.predictor import Predictor
from digitnet.models import probabilities
from digitnet.training import runs

FORMATS = ("onnx",)
PARITY_IMAGES = 1000
PARITY_TOLERANCE = 1e-4  # max |p_onnx - p_torch| over all images and classes
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
    example = torch.rand(2, *onnx_runtime.INPUT_SHAPE)  # batch 2, so the batch axis stays symbolic
    # No upper bound on the batch: the ONNX graph only names the axis "batch", any size runs.
    batch = torch.export.Dim("batch", min=1)
    with quiet_exporter():
        try:
            program = torch.onnx.export(
                WithSoftmax(net).eval(), (example,), input_names=[onnx_runtime.INPUT_NAME],
                output_names=[onnx_runtime.OUTPUT_NAME], dynamic_shapes=({0: batch},),
                opset_version=OPSET, dynamo=True, verbose=False,
            )
        except Exception as e:  # the exporter raises many types; the user needs one line
            raise DigitnetError(f"ONNX export failed ({type(e).__name__}: {str(e)[:160]}); "
                                "check that onnx and onnxscript are installed") from e
    proto = program.model_proto
    proto.doc_string = "digitnet: images float32 (batch, 1, 28, 28) in [0, 1] -> probabilities (batch, 10)"
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def export_onnx(run_dir: str | Path) -> Path:
    """Write RUN_DIR/model.onnx (atomically) and record its layout in config.json."""
    run_dir = runs.check_run_dir(run_dir)
    net, config = runs.load_model(run_dir)
    from digitnet.datasets import get_spec

    classes = get_spec(config.dataset).classes
    meta = onnx_runtime.metadata(run_dir, classes, config.model, config.dataset, __version__)
    path = run_dir / onnx_runtime.ONNX_FILE
    atomic.write_bytes(path, onnx_bytes(net, meta))
    runs.update_config(run_dir, export={
        "format": "onnx", "file": onnx_runtime.ONNX_FILE, "opset": OPSET,
        "input": {"name": onnx_runtime.INPUT_NAME, **onnx_runtime.LAYOUT},
        "output": {"name": onnx_runtime.OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(classes)],
                   "meaning": "softmax probabilities"},
        "classes": list(classes), "weights_sha256": meta["weights_sha256"],
        "digitnet_version": __version__,
    })
    return path


def discard(run_dir: Path) -> None:
    """Remove a model.onnx that failed its check, and its record in config.json."""
    (run_dir / onnx_runtime.ONNX_FILE).unlink(missing_ok=True)
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


def check_onnx(run_dir: str | Path, images: np.ndarray, labels: np.ndarray,
               limit: int = PARITY_IMAGES) -> ParityReport:
    """Compare model.onnx with the PyTorch model on the first ``limit`` images (uint8 (N, 28, 28)).

    On any failure model.onnx is removed and a DigitnetError says why; on success the report is
    also recorded in config.json under export.check.
    """
    run_dir = runs.check_run_dir(run_dir)
    path = run_dir / onnx_runtime.ONNX_FILE
    images, labels = np.asarray(images)[:limit], np.asarray(labels)[:limit]
    if len(images) == 0:
        raise DigitnetError("no images to check the ONNX model on; check the dataset")
    try:
        p_onnx = Predictor.from_run(run_dir, "onnx").probabilities(images)
    except DigitnetError as e:
        discard(run_dir)
        raise DigitnetError(f"{e} (removed it)") from e
    report = compare(p_onnx, Predictor.from_run(run_dir, "torch").probabilities(images), labels)
    if not report.passed():
        discard(run_dir)
        raise DigitnetError(
            f"{path}: does not match the PyTorch model on {report.images} images (classes agree on "
            f"{report.agreement:.1%}, max probability difference {report.max_abs_diff:.1e} > "
            f"{PARITY_TOLERANCE:.0e}); removed it, run 'digitnet export --run {run_dir}' again"
        )
    _, data = runs.read_config(run_dir)
    runs.update_config(run_dir, export={**(data.get("export") or {}), "check": report.to_dict()})
    return report
