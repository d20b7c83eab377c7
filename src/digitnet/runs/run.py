"""A run directory opened once, for everything that uses its model.

``Run.open`` reads config.json, metrics.json and model.safetensors once each, and hashes the
weights from the bytes it read. The predictor, the served model, the files for reading on the
device and the bundled reader all take a ``Run``: they ask it for the model, the verdict's
thresholds, the checked ONNX export and the description of the model, rather than each opening
the files again. Other files of the run (the ONNX export) are read when first asked for, and
once: a session opened from them and the hash that checks them come from the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from digitnet import runs
from digitnet.errors import DigitnetError
from digitnet.runs.calibration import Verdict, from_record
from digitnet.runs.config import TrainConfig


@dataclass(frozen=True)
class Run:
    """What a run directory holds, read once: its config, metrics and weights."""

    path: Path
    config: TrainConfig
    config_file: dict[str, Any]  # the whole config.json: model facts, dataset, export record
    metrics: dict[str, Any]  # metrics.json; {} for a model copied without it (it still serves)
    tensors: dict[str, torch.Tensor]  # the weights as saved
    weights_sha256: str  # of model.safetensors: what an ONNX export must have been made from
    files: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)  # read on demand

    @classmethod
    def open(cls, run_dir: str | Path) -> Run:
        """The run in ``run_dir``; one line naming the fix when a file is missing or damaged."""
        path = runs.check_run_dir(run_dir)
        config, config_file = runs.read_config(path)
        weights = runs.weights_file(path, config_file)
        raw = runs.read_bytes(weights, "weights")
        tensors, _ = runs.parse_safetensors(raw, weights, "weights")
        metrics = runs.read_metrics(path) if (path / runs.METRICS_FILE).exists() else {}
        return cls(path, config, config_file, metrics, tensors, hashlib.sha256(raw).hexdigest())

    @property
    def name(self) -> str:
        """The run directory's own name (of its resolved path: "." names the folder it is)."""
        return self.path.resolve().name

    @property
    def verdict(self) -> Verdict:
        """The verdict's thresholds chosen when the run was calibrated (defaults for other runs)."""
        return from_record(self.metrics.get("calibration"))

    def finished_metrics(self) -> dict[str, Any]:
        """metrics.json as read, for what needs the record of a finished run (its history, its
        calibration); one line naming the fix when the run has none."""
        path = self.path / runs.METRICS_FILE
        if not self.metrics and not path.is_file():
            raise DigitnetError(f"{path}: missing; is {self.path} a digitnet run directory?")
        return self.metrics

    def updated(self, **fields: Any) -> Run:
        """Write ``fields`` (top-level fields of config.json beside the TrainConfig, such as
        the export's record) atomically and return the run as it now stands:
        the same weights and metrics, the config as written, none of its other files read yet
        (the export that the fields record has replaced them)."""
        return replace(self, config_file=runs.update_config(self.path, **fields), files={})

    def model(self, device: str = "cpu") -> nn.Module:
        """A fresh copy of the trained model, in eval mode on ``device``."""
        return runs.build_trained(self.config, self.tensors, self.path).to(device).eval()

    def describe(self) -> dict[str, Any]:
        """The facts of the model that the API (``/api/model``) and a reader folder's model.json
        both give, in one place."""
        return {
            "run": self.name,
            "architecture": self.config.model,
            "parameters": self.config_file.get("model", {}).get("parameters"),
            "dataset": self.config.dataset,
            "test_accuracy": self.metrics.get("test_accuracy"),
            "classes": list(self.config.classes),
        }

    def read(self, name: str) -> bytes:
        """The bytes of the run's file ``name`` (an ONNX export), read the first time only."""
        if name not in self.files:
            self.files[name] = (self.path / name).read_bytes()
        return self.files[name]

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.read(name)).hexdigest()

    def require_checked(self) -> None:
        """Refuse a model.onnx that config.json does not record as this very file, checked against
        the PyTorch model: an export whose check failed or was interrupted, or a file changed since."""
        export = self.config_file.get("export") or {}
        path = self.path / runs.ONNX_FILE
        if not (export.get("checked") is True and (export.get("check") or {}).get("passed") is True
                and export.get("onnx_sha256") == self.sha256(runs.ONNX_FILE)):
            raise DigitnetError(f"{path}: not checked against the PyTorch model (the export failed or "
                                "was interrupted, or the file changed since); run "
                                f"'digitnet export --run {self.path}' again")

    def checked_export(self) -> tuple[Path, dict[str, Any]]:
        """The run's model.onnx and its export record (config.json's "export") when the file is the
        one that passed the check and was exported from the run's current weights; else a
        DigitnetError saying why. Opens no session: for handing the file on (to a browser)."""
        path = self.path / runs.ONNX_FILE
        if not path.is_file():
            raise DigitnetError(f"{path}: missing; run 'digitnet export --run {self.path}' to write it")
        self.require_checked()
        export = self.config_file["export"]
        if export.get("weights_sha256") != self.weights_sha256:
            raise DigitnetError(f"{path}: exported from other weights than {self.path / runs.MODEL_FILE}; "
                                f"run 'digitnet export --run {self.path}' again")
        return path, export

    def checked_first_layer(self) -> tuple[Path, dict[str, Any]] | None:
        """The run's first-layer.onnx and its record (the export record's "first_layer") when the
        file is the one that passed its check, exported with the current model.onnx; None when the
        run has none (an export made before first layers were exported) or it is not current."""
        try:
            _, export = self.checked_export()
        except DigitnetError:
            return None
        record = export.get("first_layer") or {}
        if not self._passed(record, runs.FIRST_LAYER_FILE):
            return None
        return self.path / runs.FIRST_LAYER_FILE, record

    def checked_int8(self) -> Path:
        """The run's model-int8.onnx when it is the file that passed its check, made from the
        current model.onnx; else a DigitnetError saying why."""
        _, export = self.checked_export()
        record = export.get("int8") or {}
        path = self.path / runs.INT8_FILE
        check = record.get("check") or {}
        of_this_onnx = record.get("from_onnx_sha256") == export.get("onnx_sha256")
        if of_this_onnx and check.get("passed") is False:
            # exporting again would make the same copy: say why there is none, and what serves
            raise DigitnetError(
                f"{self.path} has no int8 copy: made at export, it gave model.onnx's class on "
                f"{check['agreement']:.1%} of {check['images']} test images, under the "
                f"{check['required']:.1%} needed (this model's answers hang on a hair); use "
                "--backend onnx")
        if not (of_this_onnx and self._passed(record, runs.INT8_FILE)):
            raise DigitnetError(f"{path}: missing, unchecked or made from another model.onnx; run "
                                f"'digitnet export --run {self.path}' to write it")
        return path

    def _passed(self, record: dict[str, Any], name: str) -> bool:
        """Whether the file ``name`` beside model.onnx is there and is the one its export
        ``record`` says passed its check."""
        return ((record.get("check") or {}).get("passed") is True and (self.path / name).is_file()
                and record.get("onnx_sha256") == self.sha256(name))
