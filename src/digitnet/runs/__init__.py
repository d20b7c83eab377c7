"""Run directories and everything saved in them, written atomically, loaded safely.

A run directory holds:
  config.json             the TrainConfig plus dataset checksums, versions and model facts
  model.safetensors       the trained weights (the config is in its metadata too)
  metrics.json            test loss/accuracy, timing, history
  checkpoint.safetensors  where training stands (see ``digitnet.training.checkpoints``)
  model.onnx, first-layer.onnx, model-int8.onnx  the ONNX export, checked against the weights
                          (``digitnet export``)
A ``run.Run`` is one opened once, for whatever uses its model. Nothing here unpickles: tensors
go through safetensors, everything else through JSON.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from digitnet import __version__, atomic
from digitnet.errors import DigitnetError
from digitnet.models import build_model
from digitnet.runs.config import TrainConfig

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
# written by ``digitnet export`` (``inference.export``): the model, and its first layer alone
ONNX_FILE = "model.onnx"
FIRST_LAYER_FILE = "first-layer.onnx"
INT8_FILE = "model-int8.onnx"  # model.onnx in int8 (inference.quantize), when asked for
DEFAULT_ROOT = Path("runs")


def new_run_dir(dataset: str, root: Path = DEFAULT_ROOT) -> Path:
    """``runs/<timestamp>-<dataset>``, with a counter if two runs start in the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{stamp}-{dataset}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{dataset}-{n}"
    return path


def latest_run(root: Path = DEFAULT_ROOT) -> Path | None:
    """The most recently finished run under ``root`` (one with a model file), if any."""
    runs = [p.parent for p in root.glob(f"*/{MODEL_FILE}")]
    return max(runs, key=lambda p: (p / MODEL_FILE).stat().st_mtime, default=None)


def resolve_run_dir(run_dir: str | Path | None) -> Path:
    """``run_dir`` itself, or without one the latest finished run under ``runs/``."""
    if run_dir is not None:
        return check_run_dir(run_dir)
    latest = latest_run()
    if latest is None:
        raise DigitnetError("no trained run under runs/; train one with 'digitnet train'")
    return latest


def environment() -> dict[str, str]:
    import numpy

    return {
        "digitnet": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.version.cuda or "none",
        "cudnn": str(torch.backends.cudnn.version() or "none"),
    }


def write_config(run_dir: Path, config: TrainConfig, *, dataset_sha256: dict[str, str],
                 parameters: int, world_size: int = 1, **extra: Any) -> None:
    """config.json: all that is needed to rebuild the model and to rerun the training."""
    atomic.write_json(run_dir / CONFIG_FILE, {
        "config": config.to_dict(),
        "model": {"architecture": config.model, "parameters": parameters,
                  "input": {"layout": "NCHW", "shape": [1, 28, 28], "scale": "[0, 1]"}},
        "dataset": {"name": config.dataset, "sha256": dataset_sha256},
        "world_size": world_size,
        "environment": environment(),
        **extra,
    })


def read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise DigitnetError(f"{path}: missing; is {path.parent} a digitnet run directory?")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DigitnetError(f"{path}: unreadable {what} ({e}); the run directory is damaged") from e
    if not isinstance(data, dict):
        raise DigitnetError(f"{path}: not a {what}; the run directory is damaged")
    return data


def read_config(run_dir: Path) -> tuple[TrainConfig, dict[str, Any]]:
    """The run's TrainConfig and the whole config.json."""
    run_dir = check_run_dir(run_dir)
    data = read_json(run_dir / CONFIG_FILE, "config")
    try:
        return TrainConfig.from_dict(data["config"]), data
    except (KeyError, TypeError) as e:
        raise DigitnetError(f"{run_dir / CONFIG_FILE}: no valid 'config' section ({e})") from e


def update_config(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Add or replace top-level fields of config.json (used by export to record the layout);
    returns the whole config.json as written, as reading it back would give it."""
    data = read_json(run_dir / CONFIG_FILE, "config")
    data.update(fields)
    atomic.write_json(run_dir / CONFIG_FILE, data)
    return json.loads(json.dumps(data))  # tuples become lists, as in the file


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` already holds a run, which a new run must never replace."""
    return (run_dir / CONFIG_FILE).exists()


def taken(run_dir: Path) -> DigitnetError:
    """The refusal of a new run into ``run_dir``, which ``holds_run``."""
    return DigitnetError(f"{run_dir} already holds a run; choose another --out, continue it with "
                         f"--resume {run_dir}, or delete it first")


def check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DigitnetError(f"{run_dir}: no such run directory; train one with 'digitnet train'")
    return run_dir


def state_for_saving(module: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors wants contiguous, unshared tensors; channels-last weights are copied here.
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """``safetensors.torch.save`` with its JSON header's keys sorted.

    safetensors writes the metadata in hash-map order, which changes from one process to the next;
    sorting it makes equal weights and metadata give byte-identical files (for checksums).
    """
    raw = st_save(tensors, metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    if len(header) > n:  # escaping differs from serde's: keep the file as safetensors wrote it
        return raw
    return raw[:8] + header.ljust(n) + raw[8 + n :]


def save_model(run_dir: Path, model: nn.Module, config: TrainConfig) -> None:
    metadata = {"format": "digitnet", "config": json.dumps(config.to_dict())}
    atomic.write_bytes(run_dir / MODEL_FILE, safetensors_bytes(state_for_saving(model), metadata))


def read_safetensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, or one clear error if it is not sound."""
    return parse_safetensors(read_bytes(path, what), path, what)


def read_bytes(path: Path, what: str) -> bytes:
    """The bytes of a run's file that training writes, or one line saying it is missing."""
    if not path.is_file():
        raise DigitnetError(f"{path}: missing {what}; train the run (again) to write it")
    return path.read_bytes()


def parse_safetensors(raw: bytes, path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of the safetensors file ``raw`` read from ``path``."""
    try:
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise DigitnetError(f"{path}: corrupt {what} ({e}); retrain or restore the file") from e
    return tensors, metadata


def weights_file(run_dir: Path, config_file: dict[str, Any]) -> Path:
    """The run's model.safetensors (``config_file``: its whole config.json). An ensemble's folder
    has no weights of its own: one line naming a member to use instead."""
    path, members = run_dir / MODEL_FILE, config_file.get("ensemble")
    if members and not path.exists():
        raise DigitnetError(f"{run_dir} is an ensemble of {members} runs, each with its own "
                            f"weights: pass one of them, e.g. --run {run_dir / 'member-0'}")
    return path


def load_model(run_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Rebuild the run's model from config.json and load its weights (eval mode)."""
    config, config_file = read_config(Path(run_dir))
    tensors, _ = read_safetensors(weights_file(Path(run_dir), config_file), "weights")
    return build_trained(config, tensors, Path(run_dir)).to(device).eval(), config


def build_trained(config: TrainConfig, tensors: dict[str, torch.Tensor], run_dir: Path) -> nn.Module:
    """The architecture ``config`` names with the weights ``tensors`` (of ``run_dir``) loaded."""
    try:
        model = build_model(config.model, **config.model_kwargs())
    except TypeError as e:
        raise DigitnetError(f"{run_dir}/{CONFIG_FILE}: model_args do not fit the {config.model} "
                            f"architecture ({e}); the file was edited or is damaged") from e
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise DigitnetError(
            f"{run_dir / MODEL_FILE}: weights do not match the {config.model} in config.json ({first}); "
            "the files come from different runs"
        ) from e
    return model


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    atomic.write_json(run_dir / METRICS_FILE, metrics)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    return read_json(check_run_dir(run_dir) / METRICS_FILE, "metrics")
