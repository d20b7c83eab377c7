"""An int8 copy of a run's checked model.onnx: a third of the size and about twice as fast on
one CPU thread, kept only where it answers as the float model does.

``write_int8`` quantizes statically, in onnxruntime's QDQ format: weights to int8 per output
channel, activations to uint8 with ranges measured on calibration images the caller gives
(training digits: never the test images the check then uses). Per-channel weights matter here:
one scale per layer would crush the small filters next to the large ones. Weights use 7 of
their 8 bits (``reduce_range``): a CPU without VNNI (AVX2 only) multiplies uint8 by int8 in
pairs summed into 16 bits, which saturates on full-range weights. The copy is made on one
machine and run on others (the bundled reader's is shipped), so it must answer the same on
both: on an AVX2-only AMD EPYC a full-range copy of the tutorial model gave the float model's
class on 98.5% of 2,000 test images, and the bundled reader's on 99.75%; with 7-bit weights
both 99.95%. Dynamic quantization
was measured and dropped: onnxruntime quantizes convolutions' inputs on every call, which made
this model four times slower than float, not faster.

The copy is written under a temporary name, run beside the float ``model.onnx`` on the check
images, and renamed to ``model-int8.onnx`` only when the two give the same class for at least
``AGREEMENT`` of them; its record (the file's SHA-256, the float file's it was made from, and
the check) goes into config.json's export as "int8", so a stale or changed copy is refused.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from digitnet import atomic, runs
from digitnet.errors import DigitnetError
from digitnet.inference import onnx_runtime
from digitnet.preprocess import input_array
from digitnet.runs.run import Run

AGREEMENT = 0.999  # the share of check images on which int8 and float must give the same class
CALIBRATION_IMAGES = 1000  # enough for stable activation ranges; quantizing takes ~2 s
CALIBRATION_BATCH = 100


@contextlib.contextmanager
def quiet_quantizer():
    """The quantizer advises on the root logger ("consider pre-processing"), which would reach
    the user's terminal; only errors are let through while it runs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _calibration_reader(images: np.ndarray):
    """onnxruntime's calibration interface over uint8 (N, 28, 28) images, in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    x = input_array(np.asarray(images)[:CALIBRATION_IMAGES])  # (N, 1, 28, 28) float32 in [0, 1]

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(range(0, len(x), CALIBRATION_BATCH))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.batches, None)
            return None if start is None else {onnx_runtime.INPUT_NAME: x[start : start + CALIBRATION_BATCH]}

    return Batches()


def quantized_bytes(source: Path, calibration: np.ndarray) -> bytes:
    """The ONNX file at ``source`` quantized to int8 (QDQ, per-channel 7-bit weights, so that
    no CPU saturates), activation ranges from ``calibration`` (uint8 (N, 28, 28)); its
    metadata is kept."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if len(calibration) == 0:
        raise DigitnetError("no images to calibrate the int8 model on; check the dataset")
    with tempfile.TemporaryDirectory() as tmp, quiet_quantizer():
        out = Path(tmp) / runs.INT8_FILE
        quantize_static(source, out, _calibration_reader(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        reduce_range=True)
        return out.read_bytes()


def compare(p_int8: np.ndarray, p_float: np.ndarray) -> dict[str, Any]:
    """Both (N, classes) probability arrays: how often they give the same class, and by how much
    a probability moves."""
    agreement = float((p_int8.argmax(1) == p_float.argmax(1)).mean())
    return {"images": len(p_float), "agreement": agreement, "required": AGREEMENT,
            "max_abs_diff": float(np.abs(p_int8 - p_float).max(initial=0.0)),
            "passed": agreement >= AGREEMENT}


class _Disagrees(Exception):
    """The int8 copy failed its check: it is not renamed into place."""


def write_int8(run: Run, calibration: np.ndarray, check: np.ndarray) -> dict[str, Any]:
    """Write the run's ``model-int8.onnx`` from its checked model.onnx, renamed into place
    only once it agrees with it on ``check`` (uint8 (N, 28, 28)); returns its record, whose
    check says whether it passed (a model whose answers hang on a hair, such as one trained for
    a few steps, may not: it then has no int8 copy, and the float model.onnx serves)."""
    source, _ = run.checked_export()
    x = input_array(np.asarray(check))
    if len(x) == 0:
        raise DigitnetError("no images to check the int8 model on; check the dataset")
    path = run.path / runs.INT8_FILE
    record = {"file": path.name, "format": "QDQ: int8 weights per channel (7 bits used), uint8 activations",
              "calibration_images": min(len(calibration), CALIBRATION_IMAGES),
              "from_onnx_sha256": run.sha256(runs.ONNX_FILE)}
    try:
        with atomic.atomic_open(path, "wb") as f:
            f.write(quantized_bytes(source, calibration))
            f.flush()
            session = onnx_runtime.new_session(Path(f.name), run.path)
            onnx_runtime.check_session(session, path, run.path, run.weights_sha256)
            float_session = onnx_runtime.new_session(source, run.path, data=run.read(runs.ONNX_FILE))
            report = compare(onnx_runtime.run_session(session, x), onnx_runtime.run_session(float_session, x))
            if not report["passed"]:
                raise _Disagrees
    except _Disagrees:
        return {**record, "onnx_sha256": None, "check": report}
    return {**record, "onnx_sha256": onnx_runtime.file_sha256(path), "check": report}
