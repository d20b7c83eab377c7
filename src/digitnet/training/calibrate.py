"""Fitting a trained model's honest confidence on its validation split: the temperature and the
verdict's thresholds, and the calibration error before and after (the rule itself is
``runs.calibration``, which every runtime uses).

The temperature is folded into the model's last layer (``fold_temperature``), so every runtime
(PyTorch, ONNX, a browser) gives the calibrated probabilities without knowing about it.

``fit_verdict`` is the one fitting step of every digit model: ``calibrate`` runs it at the end
of training, ``recalibrate`` on a finished run, fine-tuning on the model it tuned. Where they
differ, the difference is real:

- a trained reader (``config.writers``) is fitted on its validation digits and on the same
  digits as other writers write them; fine-tuning refits on the plain validation split only,
  as the fine-tuned models it has kept were fitted;
- ``recalibrate`` keeps the original model's error before any temperature; fine-tuning
  reports the tuned model's;
- the line reader (``line_reader.calibrate_lines``) fits its temperature on whole lines' CTC
  loss and has no "not a digit" threshold, only the "a or b?" ratio.

``recalibrate`` fits a finished run again with this version's rule, on the same validation
split rebuilt from its config, for a run trained before the rule or the preprocessing
(``imaging.PREPROCESS_VERSION``, recorded with the verdict) changed: ``python -m
digitnet.training.calibrate RUN_DIR``; ``--lines DIR`` does the same for a line reader
(``line_reader.refit``). A model refitted has its earlier temperature already folded in, so
its record's temperature is the product of both (``on_top``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from digitnet import runs
from digitnet.datasets import load
from digitnet.errors import DigitnetError
from digitnet.evaluate import predict_logits
from digitnet.runs.calibration import Verdict, decide
from digitnet.runs.config import NOT_A_DIGIT, TrainConfig
from digitnet.runs.run import Run
from digitnet.training.augment import other_writers
from digitnet.vision import imaging

# The share of other writers' validation digits whose P(not a digit) stays under ``reject``; a
# digit whose most probable class is "not a digit" is refused all the same (see choose_verdict).
WRITERS_ACCEPTED = 0.995


def search_temperature(nll: Callable[[float], float]) -> float:
    """The T > 0 minimising ``nll(T)``: a grid over log T, then a finer grid around the best
    point (one parameter, so a search is simpler and as good as LBFGS)."""
    grid = torch.logspace(-1, 1, 81, base=10.0).tolist()  # 0.1 .. 10
    best = min(grid, key=nll)
    return min((best * f for f in torch.logspace(-0.03, 0.03, 61, base=10.0).tolist()), key=nll)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T) for (N, classes) logits."""
    return search_temperature(lambda t: float(F.cross_entropy(logits / t, labels)))


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error of the top class of (N, classes) probabilities."""
    conf, pred = probs.max(dim=1)
    return binned_gap(conf, (pred == labels).float(), bins)


def binned_gap(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15) -> float:
    """The mean |accuracy - confidence| over equal-width confidence bins, weighted by how many
    answers fall in each: (N,) confidences and (N,) 1.0 / 0.0 for right and wrong."""
    which = torch.clamp((confidence * bins).long(), max=bins - 1)
    gap = torch.zeros(bins).index_add_(0, which, correct - confidence)
    return float(gap.abs().sum() / len(confidence))


def choose_verdict(logits: torch.Tensor, labels: torch.Tensor, accept: float = 0.999,
                   sure_accuracy: float = 0.998, writers: torch.Tensor | None = None) -> Verdict:
    """Fit the temperature, then the thresholds on validation logits (N, 11) and labels (N,):

    - reject: the lowest threshold that still accepts ``accept`` of the real digits written
      as other writers write (``writers``, bool (N,): the validation digits redrawn with other
      pens, shapes and scans; all digits when None), so that as many negatives as possible are
      refused at that acceptance. Refusing a person's digit costs more than letting a rare
      scribble through, and a threshold set on MNIST's own clean digits refuses other writers'
      (10% of low-resolution scans, where it was set on clean digits). ``decide`` also refuses
      a digit whose most probable class is "not a digit", so fewer than ``accept`` pass in
      all; fit_verdict records how many (``val_writers_accepted``);
    - close: the highest ratio (fewest "a or b?") at which the digits answered without doubt
      are right ``sure_accuracy`` of the time, on the digits as they are (not ``writers``: on
      digits that much harder no ratio reaches it, and nearly every answer would be "a or b?").
    """
    t = fit_temperature(logits, labels)
    probs = torch.softmax(logits.float() / t, dim=1)
    is_digit = labels != NOT_A_DIGIT
    plain = is_digit if writers is None else is_digit & ~writers
    sample = is_digit if writers is None else writers & is_digit
    reject = 1.0
    if probs.shape[1] > NOT_A_DIGIT:
        p_not = probs[sample, NOT_A_DIGIT].sort().values
        reject = float(p_not[min(len(p_not) - 1, int(accept * len(p_not)))]) + 1e-6
        reject = min(max(reject, 0.05), 0.95)
    close = choose_close(probs[plain], labels[plain], Verdict(t, reject), sure_accuracy)
    return Verdict(t, reject, close)


def choose_close(probs: torch.Tensor, labels: torch.Tensor, verdict: Verdict,
                 sure_accuracy: float = 0.995) -> float:
    """The highest runner-up ratio (fewest "a or b?") at which the answers given without doubt
    are right ``sure_accuracy`` of the time, for (N, 11) probabilities of real digits."""
    for ratio in torch.linspace(1.0, 0.05, 96).tolist():  # from fewest to most "unsure"
        answer, _, unsure = decide(probs, Verdict(verdict.temperature, verdict.reject, ratio))
        sure = ~unsure & (answer != NOT_A_DIGIT)
        if (answer[sure] == labels[sure]).float().mean() >= sure_accuracy:
            return ratio
    return 0.05


@torch.no_grad()
def fold_temperature(model: nn.Module, temperature: float) -> None:
    """Divide the last linear layer by ``temperature``: its logits become logits / T."""
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    head.weight.div_(temperature)
    head.bias.div_(temperature)


def fit_verdict(model: nn.Module, logits: torch.Tensor, y: torch.Tensor,
                writers: torch.Tensor | None = None) -> dict[str, float]:
    """Fit the temperature and the verdict's thresholds on validation ``logits`` (N, classes)
    with labels ``y`` (N,), fold the temperature into ``model``, and return them with the
    calibration error before and after: the one fitting step of a trained run, a finished run
    fitted again, and a fine-tuned model.

    ``writers`` (N,) bool marks the rows that are digits as other writers write them: then
    ``WRITERS_ACCEPTED`` of those must not be refused, and the record says how many were and
    how many were read right."""
    verdict = (choose_verdict(logits, y) if writers is None else
               choose_verdict(logits, y, accept=WRITERS_ACCEPTED, writers=writers))
    probs = torch.softmax(logits / verdict.temperature, 1)
    record = {"temperature": verdict.temperature, "reject": verdict.reject, "close": verdict.close,
              "val_ece_before": ece(torch.softmax(logits, 1), y),
              "val_ece_after": ece(probs, y),
              # the preprocessing whose 28x28 pictures (negatives, other writers) it was fitted on
              "preprocess": imaging.PREPROCESS_VERSION}
    if writers is not None:
        said, _, _ = decide(probs[writers], verdict)
        record["val_writers_accepted"] = float((said != NOT_A_DIGIT).float().mean())
        record["val_writers_accuracy"] = float((probs[writers, :NOT_A_DIGIT].argmax(1)
                                                == y[writers]).float().mean())
    fold_temperature(model, verdict.temperature)
    return record


def calibrate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig
              ) -> dict[str, float]:
    """``fit_verdict`` on a run's validation split: images ``x`` (N, 1, 28, 28), labels ``y`` (N,).

    A reader (``config.writers``) is fitted on its validation digits twice over, as they are and
    as other writers write them (``augment.other_writers``), and accepts a share of the latter:
    its confidence and its "not a digit" must hold for people's digits, not only MNIST's."""
    styled = None
    if config.writers:
        digits = y != NOT_A_DIGIT
        plain = len(y)
        x = torch.cat([x, other_writers(x[digits], y[digits], config.seed)])
        y = torch.cat([y, y[digits]])
        styled = torch.arange(len(y), device=y.device) >= plain
    logits = predict_logits(model, x, config.eval_batch_size).cpu()  # (N, classes)
    return fit_verdict(model, logits, y.cpu(), None if styled is None else styled.cpu())


def on_top(record: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """``record`` fitted on a model that already had ``previous``'s temperature folded in: its
    temperature becomes the whole one, the product of both."""
    return {**record, "temperature": float(previous["temperature"]) * record["temperature"]}


def recalibrate(run_dir: str | Path, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Fit a finished, calibrated run's verdict again on its validation split (rebuilt from its
    config, negatives included), fold the new temperature on top of the old one, and save the
    model and metrics.json (atomically); returns the new calibration record."""
    from digitnet.training.run import read_fashion, validation_split  # as training drew it

    run = Run.open(run_dir)
    run_dir, model, config, metrics = run.path, run.model(), run.config, run.finished_metrics()
    before = metrics.get("calibration")
    if not before or not config.validation:
        raise DigitnetError(f"{run_dir}: not a calibrated run with a validation split; nothing to refit")
    x, y = validation_split(load(config.dataset, data_dir), config, torch.device("cpu"),
                            read_fashion(config, data_dir))
    # the error before is the original model's, before any temperature
    record = {**on_top(calibrate(model, x, y, config), before),
              "val_ece_before": before["val_ece_before"]}
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
