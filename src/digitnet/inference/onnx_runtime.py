"""A run's ``model.onnx``: what its metadata records, and opening it with onnxruntime safely.

The file is written by ``digitnet.inference.export``. It maps float32 images (N, 1, 28, 28) in [0, 1]
to class probabilities (N, 10), softmax included. Its metadata names the SHA-256 of the
``model.safetensors`` it was exported from, so a model.onnx left over from older weights, or
copied from another run, is refused instead of silently giving other answers. Whether the file
is the one the export checked is the run's to say (``runs.run.Run.checked_export``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from digitnet import runs
from digitnet.errors import DigitnetError
from digitnet.runs.run import Run

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
# The first layer alone (``runs.FIRST_LAYER_FILE``: its convolution, with the batch norm and
# activation right after it): the feature maps the page shows on the device, where there is no
# PyTorch to hook into.
FEATURES_NAME = "feature_maps"
INPUT_SHAPE = (1, 28, 28)  # per image, after the dynamic batch axis
LAYOUT = {"layout": "NCHW", "dtype": "float32", "shape": ["batch", *INPUT_SHAPE], "scale": "[0, 1]"}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def metadata(run: Run, version: str) -> dict[str, str]:
    """The key/value strings stored in the ONNX file's metadata_props (all strings, per ONNX)."""
    classes = run.config.classes
    return {
        "format": "digitnet",
        "layout": LAYOUT["layout"],
        "input": f"{INPUT_NAME}: float32 (batch, 1, 28, 28), pixels scaled to [0, 1], 0 = background",
        "output": f"{OUTPUT_NAME}: float32 (batch, {len(classes)}), softmax over the classes",
        "scale": LAYOUT["scale"],
        "classes": json.dumps(list(classes)),
        "architecture": run.config.model,
        "dataset": run.config.dataset,
        "digitnet_version": version,
        "run": run.path.name,
        "weights_sha256": run.weights_sha256,
    }


def session_options(threads: int):
    """Bounded intra-op threads: more than the cores only adds contention (latency spikes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: on a shared or busy CPU spinning steals the cores
    # the other threads need (p99 single-image latency 17-21 ms with it, 9 ms without, at load 12).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; warnings would reach the user's terminal
    return options


def open_session(run: Run, threads: int = 2):
    """An onnxruntime session for the run's model.onnx, refused if missing, unchecked, corrupt
    or stale; opened from the bytes the run read, which its check hashes too."""
    path = run.path / runs.ONNX_FILE
    if not path.is_file():
        raise DigitnetError(f"{path}: missing; run 'digitnet export --run {run.path}' to write it")
    session = new_session(path, run.path, threads, data=run.read(runs.ONNX_FILE))
    check_session(session, path, run.path, run.weights_sha256)  # a corrupt or stale file says so first
    run.require_checked()
    return session


def open_int8_session(run: Run, threads: int = 2):
    """An onnxruntime session for the run's model-int8.onnx, refused unless it is the checked
    copy of the current model.onnx (``Run.checked_int8``)."""
    path = run.checked_int8()
    session = new_session(path, run.path, threads, data=run.read(runs.INT8_FILE))
    check_session(session, path, run.path, run.weights_sha256)
    return session


def load_session(path: Path, run: Run, threads: int = 2):
    """An onnxruntime session for the ONNX file at ``path`` exported from the run's weights,
    checked or not: only the parity check itself should call this directly."""
    session = new_session(path, run.path, threads)
    check_session(session, path, run.path, run.weights_sha256)
    return session


def new_session(path: Path, run_dir: Path, threads: int = 2, *, data: bytes | None = None):
    """An onnxruntime session for any ONNX file of the run's (``data``: its bytes, when read
    already), its interface unchecked."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path) if data is None else data, session_options(threads),
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's errors derive from Exception only, not RuntimeError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DigitnetError(f"{path}: not a readable ONNX model ({first[:160]}); "
                            f"run 'digitnet export --run {run_dir}' again") from e


def check_session(session, path: Path, run_dir: Path, weights: str) -> None:
    """Refuse a model.onnx whose interface is not a digitnet model's, or which was exported from
    other weights than those whose SHA-256 is ``weights``."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    meta = session.get_modelmeta().custom_metadata_map
    if ([i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]
            or list(inputs[0].shape[1:]) != list(INPUT_SHAPE) or meta.get("format") != "digitnet"):
        raise DigitnetError(f"{path}: not a digitnet model (input/output or metadata differ); "
                            f"run 'digitnet export --run {run_dir}' again")
    if meta.get("weights_sha256") != weights:
        raise DigitnetError(f"{path}: exported from other weights than {run_dir / runs.MODEL_FILE} "
                            f"(stale or from another run); run 'digitnet export --run {run_dir}' again")


def run_session(session, x: np.ndarray) -> np.ndarray:
    """float32 (N, 1, 28, 28) in [0, 1] -> float32 (N, 10) probabilities."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]
