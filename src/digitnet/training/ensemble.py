"""Ensembles: K models trained with seeds seed..seed+K-1, measured by averaged probabilities.

Each member is an ordinary run directory (``RUN_DIR/member-<k>/``) that every other command can
use; the ensemble's own ``RUN_DIR/metrics.json`` holds the averaged model's test accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from digitnet import atomic, runs
from digitnet.datasets import Dataset, load
from digitnet.errors import DigitnetError
from digitnet.evaluate import confusion_matrix, predict_logits
from digitnet.models import probabilities
from digitnet.preprocess import input_tensor
from digitnet.runs.config import TrainConfig
from digitnet.runs.run import Run
from digitnet.training.hooks import Reporter
from digitnet.training.run import fit


def member_dir(run_dir: Path, k: int) -> Path:
    return run_dir / f"member-{k}"


def average_probabilities(models: list[torch.nn.Module], x: torch.Tensor,
                          batch_size: int = 1000) -> torch.Tensor:
    """Mean of the members' softmax outputs: (N, 10) for images x (N, 1, 28, 28)."""
    return torch.stack([probabilities(predict_logits(m, x, batch_size)) for m in models]).mean(0)


def fit_ensemble(config: TrainConfig, k: int, run_dir: Path | None = None, *,
                 data_dir: str | Path | None = None, dataset: Dataset | None = None,
                 reporter: Reporter | None = None) -> dict[str, Any]:
    """Train ``k`` members of ``config`` (seeds seed..seed+k-1) into ``run_dir``; return metrics."""
    if k < 2:
        raise DigitnetError(f"--ensemble needs at least 2 members, got {k}")
    ds = dataset or load(config.dataset, data_dir)
    run_dir = run_dir or runs.new_run_dir(config.dataset)
    if runs.holds_run(run_dir):
        raise runs.taken(run_dir)
    atomic.make_folder(run_dir)
    runs.write_config(run_dir, config, dataset_sha256=ds.sha256, parameters=0, ensemble=k)
    members = [fit(config.replace(seed=config.seed + i), member_dir(run_dir, i), dataset=ds,
                   reporter=reporter) for i in range(k)]
    models = [Run.open(member_dir(run_dir, i)).model() for i in range(k)]
    x_test, y_test = input_tensor(ds.x_test), torch.from_numpy(ds.y_test).long()
    probs = average_probabilities(models, x_test, config.eval_batch_size)  # (N, 10)
    predicted = probs.argmax(1)
    confusion = confusion_matrix(y_test, predicted, probs.shape[1])
    metrics = {
        "run_dir": str(run_dir),
        "ensemble": k,
        "test_accuracy": float((predicted == y_test).float().mean()),
        # loss of the averaged probabilities (what the ensemble predicts), not a mean of losses
        "test_loss": float(-probs[torch.arange(len(y_test)), y_test].clamp_min(1e-12).log().mean()),
        "train_seconds": sum(m["train_seconds"] for m in members),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "members": [{"run_dir": m["run_dir"], "seed": config.seed + i,
                     "test_accuracy": m["test_accuracy"], "train_seconds": m["train_seconds"]}
                    for i, m in enumerate(members)],
        "confusion": confusion.tolist(),
    }
    runs.write_metrics(run_dir, metrics)
    return metrics
