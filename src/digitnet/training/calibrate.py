"""Fitting a trained model's honest confidence on its validation split: the temperature and the
verdict's thresholds (the rule itself is ``inference.calibration``, which every runtime uses).

``calibrate`` runs at the end of training. ``recalibrate`` fits a finished run again with this
version's rule, on the same validation split rebuilt from its config, for a run trained before
the rule or the preprocessing (``imaging.PREPROCESS_VERSION``, recorded with the verdict)
changed: ``python -m digitnet.training.calibrate RUN_DIR``; ``--lines DIR`` does the
same for a line reader (``line_reader.refit``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from digitnet import runs
from digitnet.datasets import load
from digitnet.errors import DigitnetError
from digitnet.evaluate import predict_logits
from digitnet.inference import calibration
from digitnet.runs.config import NOT_A_DIGIT, TrainConfig
from digitnet.training.augment import other_writers
from digitnet.vision import imaging

WRITERS_ACCEPTED = 0.995  # a reader's share of other writers' validation digits not refused


def calibrate(model: nn.Module, split, config: TrainConfig) -> dict[str, float]:
    """Fit the temperature and the verdict's thresholds on the validation split (``split``:
    a ``run.Split`` whose eval tensors are the validation images and labels), fold the
    temperature into ``model``, and return them with the calibration error before and after.

    A reader (``config.writers``) is fitted on its validation digits twice over, as they are and
    as other writers write them (``augment.other_writers``), and accepts a share of the latter:
    its confidence and its "not a digit" must hold for people's digits, not only MNIST's."""
    x, y, styled = split.x_eval, split.y_eval, None
    if config.writers:
        digits = y != NOT_A_DIGIT
        x = torch.cat([x, other_writers(x[digits], y[digits], config.seed)])
        y = torch.cat([y, y[digits]])
        styled = torch.arange(len(y), device=y.device) >= len(split.y_eval)
    logits = predict_logits(model, x, config.eval_batch_size).cpu()  # (N, classes)
    y, styled = y.cpu(), None if styled is None else styled.cpu()
    verdict = (calibration.choose_verdict(logits, y) if styled is None else
               calibration.choose_verdict(logits, y, accept=WRITERS_ACCEPTED, writers=styled))
    probs = torch.softmax(logits / verdict.temperature, 1)
    record = {"temperature": verdict.temperature, "reject": verdict.reject, "close": verdict.close,
              "val_ece_before": calibration.ece(torch.softmax(logits, 1), y),
              "val_ece_after": calibration.ece(probs, y),
              # the preprocessing whose 28x28 pictures (negatives, other writers) it was fitted on
              "preprocess": imaging.PREPROCESS_VERSION}
    if styled is not None:
        said, _, _ = calibration.decide(probs[styled], verdict)
        record["val_writers_accepted"] = float((said != NOT_A_DIGIT).float().mean())
        record["val_writers_accuracy"] = float((probs[styled, :NOT_A_DIGIT].argmax(1)
                                                == y[styled]).float().mean())
    calibration.fold_temperature(model, verdict.temperature)
    return record


def recalibrate(run_dir: str | Path, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Fit a finished, calibrated run's verdict again on its validation split (rebuilt from its
    config, negatives included), fold the new temperature on top of the old one, and save the
    model and metrics.json (atomically); returns the new calibration record."""
    from digitnet.training.run import make_split  # the split as training made it

    run_dir = runs.check_run_dir(run_dir)
    model, config = runs.load_model(run_dir)
    metrics = runs.read_metrics(run_dir)
    before = metrics.get("calibration")
    if not before or not config.validation:
        raise DigitnetError(f"{run_dir}: not a calibrated run with a validation split; nothing to refit")
    split = make_split(load(config.dataset, data_dir), config, torch.device("cpu"), data_dir)
    record = calibrate(model, split, config)
    # the saved model already had the earlier temperature folded in: the whole is the product
    record["temperature"] *= before["temperature"]
    record["val_ece_before"] = before["val_ece_before"]
    runs.save_model(run_dir, model, config)
    runs.write_metrics(run_dir, {**metrics, "calibration": record})
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m digitnet.training.calibrate RUN_DIR``: fit a run's verdict again."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m digitnet.training.calibrate",
                                     description="Fit a calibrated run's temperature and verdict "
                                                 "again with this version's rule.")
    parser.add_argument("run_dir", help="a run trained with a validation split, or with --lines a "
                                        "folder holding line-reader.safetensors")
    parser.add_argument("--lines", action="store_true", help="the folder holds a line reader")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset's IDX files")
    args = parser.parse_args(argv)
    try:
        if args.lines:
            from digitnet.training.line_reader import refit

            record = refit(Path(args.run_dir), args.data_dir)
        else:
            record = recalibrate(args.run_dir, args.data_dir)
    except DigitnetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"refitted {args.run_dir}: " + ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                                                   if isinstance(v, float)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
