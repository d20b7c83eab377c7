"""A run's ``model.onnx``: what its metadata records, and opening it with onnxruntime safely.

The file is written by ``digitnet.inference.export``. It maps float32 images (N, 1, 28, 28) in [0, 1]
to class probabilities (N, 10), softmax included. Its metadata names the SHA-256 of the
``model.safetensors`` it was exported from, so a model.onnx left over from older weights, or
copied from another run, is refused instead of silently giving other answers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from digitnet import runs
from digitnet.errors import DigitnetError

ONNX_FILE = "model.onnx"
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
# The first layer alone (its convolution, with the batch norm and activation right after it):
# the feature maps the page shows on the device, where there is no PyTorch to hook into.
FIRST_LAYER_FILE = "first-layer.onnx"
FEATURES_NAME = "feature_maps"
INPUT_SHAPE = (1, 28, 28)  # per image, after the dynamic batch axis
LAYOUT = {"layout": "NCHW", "dtype": "float32", "shape": ["batch", *INPUT_SHAPE], "scale": "[0, 1]"}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_sha256(run_dir: Path) -> str:
    """SHA-256 of the run's model.safetensors: what a model.onnx must have been exported from."""
    path = run_dir / runs.MODEL_FILE
    if not path.is_file():
        raise DigitnetError(f"{path}: missing weights; train the run (again) to write it")
    return file_sha256(path)


def metadata(run_dir: Path, classes: tuple[str, ...], architecture: str, dataset: str,
             version: str) -> dict[str, str]:
    """The key/value strings stored in the ONNX file's metadata_props (all strings, per ONNX)."""
    return {
        "format": "digitnet",
        "layout": LAYOUT["layout"],
        "input": f"{INPUT_NAME}: float32 (batch, 1, 28, 28), pixels scaled to [0, 1], 0 = background",
        "output": f"{OUTPUT_NAME}: float32 (batch, {len(classes)}), softmax over the classes",
        "scale": LAYOUT["scale"],
        "classes": json.dumps(list(classes)),
        "architecture": architecture,
        "dataset": dataset,
        "digitnet_version": version,
        "run": run_dir.name,
        "weights_sha256": weights_sha256(run_dir),
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


def require_checked(path: Path, run_dir: Path) -> None:
    """Refuse a model.onnx that config.json does not record as this very file, checked against
    the PyTorch model: an export whose check failed or was interrupted, or a file changed since."""
    _, data = runs.read_config(run_dir)
    export = data.get("export") or {}
    if not (export.get("checked") is True and (export.get("check") or {}).get("passed") is True
            and export.get("onnx_sha256") == file_sha256(path)):
        raise DigitnetError(f"{path}: not checked against the PyTorch model (the export failed or was "
                            "interrupted, or the file changed since); run "
                            f"'digitnet export --run {run_dir}' again")


def current_export(run_dir: Path) -> tuple[Path, dict]:
    """The run's model.onnx and its export record (config.json's "export") when the file is the
    one that passed the check and was exported from the run's current weights; else a
    DigitnetError saying why. Opens nothing: for handing the file on (to a browser)."""
    path = run_dir / ONNX_FILE
    if not path.is_file():
        raise DigitnetError(f"{path}: missing; run 'digitnet export --run {run_dir}' to write it")
    require_checked(path, run_dir)
    export = runs.read_config(run_dir)[1]["export"]
    if export.get("weights_sha256") != weights_sha256(run_dir):
        raise DigitnetError(f"{path}: exported from other weights than {run_dir / runs.MODEL_FILE}; "
                            f"run 'digitnet export --run {run_dir}' again")
    return path, export


def current_first_layer(run_dir: Path) -> tuple[Path, dict] | None:
    """The run's first-layer.onnx and its record (config.json's "export" "first_layer") when the
    file is the one that passed its check, exported with the current model.onnx; None when the
    run has none (an export made before first layers were exported) or it is not current."""
    try:
        _, export = current_export(run_dir)
    except DigitnetError:
        return None
    record = export.get("first_layer") or {}
    path = run_dir / FIRST_LAYER_FILE
    if not ((record.get("check") or {}).get("passed") is True and path.is_file()
            and record.get("onnx_sha256") == file_sha256(path)):
        return None
    return path, record


def open_session(run_dir: Path, threads: int = 2):
    """An onnxruntime session for the run's model.onnx, refused if missing, unchecked, corrupt
    or stale."""
    path = run_dir / ONNX_FILE
    if not path.is_file():
        raise DigitnetError(f"{path}: missing; run 'digitnet export --run {run_dir}' to write it")
    session = load_session(path, run_dir, threads)  # a corrupt or stale file says so first
    require_checked(path, run_dir)
    return session


def load_session(path: Path, run_dir: Path, threads: int = 2):
    """An onnxruntime session for the ONNX file at ``path`` exported from ``run_dir``'s weights,
    checked or not: only the parity check itself should call this directly."""
    session = new_session(path, run_dir, threads)
    check_session(session, path, run_dir)
    return session


def new_session(path: Path, run_dir: Path, threads: int = 2):
    """An onnxruntime session for any ONNX file of the run's, its interface unchecked."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's errors derive from Exception only, not RuntimeError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DigitnetError(f"{path}: not a readable ONNX model ({first[:160]}); "
                            f"run 'digitnet export --run {run_dir}' again") from e


def check_session(session, path: Path, run_dir: Path) -> None:
    """Refuse a model.onnx whose interface or source weights are not this run's."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    meta = session.get_modelmeta().custom_metadata_map
    if ([i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]
            or list(inputs[0].shape[1:]) != list(INPUT_SHAPE) or meta.get("format") != "digitnet"):
        raise DigitnetError(f"{path}: not a digitnet model (input/output or metadata differ); "
                            f"run 'digitnet export --run {run_dir}' again")
    if meta.get("weights_sha256") != weights_sha256(run_dir):
        raise DigitnetError(f"{path}: exported from other weights than {run_dir / runs.MODEL_FILE} "
                            f"(stale or from another run); run 'digitnet export --run {run_dir}' again")


def run_session(session, x: np.ndarray) -> np.ndarray:
    """float32 (N, 1, 28, 28) in [0, 1] -> float32 (N, 10) probabilities."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]
