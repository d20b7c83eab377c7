"""Checkpoints: where training stands, saved so that a run continues exactly as if never stopped.

One safetensors file per run directory holds the model, optimizer, EMA and every process's random
state; the position in training, the history and the optimizer's scalars go into its JSON
metadata. Nothing is pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from digitnet import atomic
from digitnet.errors import DigitnetError
from digitnet.runs import check_run_dir, read_safetensors, safetensors_bytes
from digitnet.runs.config import TrainConfig

CHECKPOINT_FILE = "checkpoint.safetensors"


@dataclass
class Checkpoint:
    """Where training stands: enough to continue exactly as if never stopped."""

    epoch: int  # the epoch in progress (0-based)
    step: int  # steps of that epoch already taken
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, torch.Tensor]  # "<stream>.<rank>": every process's random state
    ema: dict[str, torch.Tensor] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    world_size: int = 1
    # [loss sum, correct, images] of the epoch so far over all processes, and the same sums at
    # the last point of the per-step loss curve: the epoch's record comes out as if never stopped.
    epoch_sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    trace_from: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])


def save_checkpoint(run_dir: Path, ckpt: Checkpoint, config: TrainConfig) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for prefix, group in (("model.", ckpt.model), ("ema.", ckpt.ema), ("rng.", ckpt.rng)):
        tensors.update({prefix + k: v.detach().cpu().contiguous().clone() for k, v in group.items()})
    scalars: dict[str, Any] = {}
    for pid, state in ckpt.optimizer["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"optimizer.{pid}.{k}"] = v.detach().cpu().contiguous().clone()
            else:
                scalars[f"{pid}.{k}"] = v
    meta = {
        "epoch": ckpt.epoch, "step": ckpt.step, "history": ckpt.history,
        "train_seconds": ckpt.train_seconds, "world_size": ckpt.world_size,
        "epoch_sums": ckpt.epoch_sums, "trace_from": ckpt.trace_from,
        "param_groups": ckpt.optimizer["param_groups"], "optimizer_scalars": scalars,
        "config": config.to_dict(),
    }
    metadata = {"format": "digitnet-checkpoint", "state": json.dumps(meta)}
    atomic.write_bytes(run_dir / CHECKPOINT_FILE, safetensors_bytes(tensors, metadata))


def load_checkpoint(run_dir: Path) -> tuple[Checkpoint, TrainConfig]:
    path = check_run_dir(run_dir) / CHECKPOINT_FILE
    tensors, metadata = read_safetensors(path, "checkpoint")
    try:
        meta = json.loads(metadata["state"])
        groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "rng": {}}
        opt_state: dict[int, dict[str, Any]] = {}
        for key, tensor in tensors.items():
            prefix, rest = key.split(".", 1)
            if prefix == "optimizer":
                pid, name = rest.split(".", 1)
                opt_state.setdefault(int(pid), {})[name] = tensor
            else:
                groups[prefix][rest] = tensor
        for key, value in meta["optimizer_scalars"].items():
            pid, name = key.split(".", 1)
            opt_state.setdefault(int(pid), {})[name] = value
        ckpt = Checkpoint(
            epoch=meta["epoch"], step=meta["step"], model=groups["model"], ema=groups["ema"],
            rng=groups["rng"], history=meta["history"], train_seconds=meta["train_seconds"],
            world_size=meta["world_size"], epoch_sums=meta["epoch_sums"],
            trace_from=meta["trace_from"],
            optimizer={"state": dict(sorted(opt_state.items())),
                       "param_groups": meta["param_groups"]},
        )
        config = TrainConfig.from_dict(meta["config"])
    except (KeyError, ValueError, TypeError) as e:
        raise DigitnetError(f"{path}: checkpoint state is damaged ({e}); start a new run") from e
    return ckpt, config
