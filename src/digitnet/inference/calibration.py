"""Honest confidence: temperature scaling, expected calibration error, and the verdict rule
that turns a reader's 11 probabilities into "7", "4 or 9?" or "not a digit".

The temperature is fitted on a validation split after training and folded into the model's
last layer (``fold_temperature``), so every runtime (PyTorch, ONNX, a browser) gives the
calibrated probabilities without knowing about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from digitnet.runs.config import NOT_A_DIGIT, NOT_A_DIGIT_NAME


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


@dataclass(frozen=True)
class Verdict:
    """Thresholds of the verdict rule, chosen on validation data only."""

    temperature: float = 1.0  # already folded into the saved model; kept as a record
    reject: float = 0.5  # "not a digit" when P(not a digit) >= reject (or when it wins outright)
    close: float = 0.3  # "a or b?" when the runner-up digit has >= close x the top digit's probability


def decide(probs: torch.Tensor, v: Verdict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 11) probabilities -> (answer, runner_up, unsure), each (N,).

    answer is the digit, or NOT_A_DIGIT; runner_up is the second most likely digit; unsure
    marks digits whose runner-up is close enough to name both ("4 or 9?").
    """
    digits = probs[:, :NOT_A_DIGIT]
    top2 = digits.topk(2, dim=1)
    if probs.shape[1] > NOT_A_DIGIT:
        rejected = (probs[:, NOT_A_DIGIT] >= v.reject) | (probs.argmax(dim=1) == NOT_A_DIGIT)
    else:  # a model without the 11th class never says "not a digit"
        rejected = torch.zeros(len(probs), dtype=torch.bool)
    answer = torch.where(rejected, NOT_A_DIGIT, top2.indices[:, 0])
    unsure = ~rejected & (top2.values[:, 1] >= v.close * top2.values[:, 0])
    return answer, top2.indices[:, 1], unsure


VERDICTS = ("digit", "unsure", "not_a_digit")


@dataclass(frozen=True)
class Answer:
    """What the reader says of one image, as a person reads it and as the API returns it."""

    verdict: str  # one of VERDICTS
    text: str  # "7", "4 or 9?" or "not a digit"
    digit: int  # the most likely digit (also under "not a digit", for who wants a guess)
    runner_up: int | None  # the second most likely, named only when unsure
    probability: float  # calibrated probability of what ``text`` says first: the digit, or not-a-digit

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "text": self.text, "digit": self.digit,
                "runner_up": self.runner_up, "probability": self.probability}


def answers(probs: np.ndarray, v: Verdict, names: Sequence[str]) -> list[Answer]:
    """(N, classes) calibrated probabilities -> one Answer per image, ``names`` naming classes."""
    p = torch.as_tensor(np.asarray(probs, dtype=np.float32))
    answer, runner_up, unsure = decide(p, v)
    top = p[:, :NOT_A_DIGIT].argmax(dim=1)
    out = []
    for row, a, t, r, u in zip(p.tolist(), answer.tolist(), top.tolist(), runner_up.tolist(),
                               unsure.tolist(), strict=True):
        if a == NOT_A_DIGIT:
            out.append(Answer("not_a_digit", NOT_A_DIGIT_NAME, t, None, round(row[a], 6)))
        elif u:
            out.append(Answer("unsure", f"{names[a]} or {names[r]}?", a, r, round(row[a], 6)))
        else:
            out.append(Answer("digit", names[a], a, None, round(row[a], 6)))
    return out


def from_record(record: dict[str, Any] | None) -> Verdict:
    """The Verdict a run recorded when it was calibrated (metrics.json's "calibration"), or the
    defaults for a run that was not (it then never says "not a digit")."""
    if not record:
        return Verdict()
    return Verdict(float(record["temperature"]), float(record["reject"]), float(record["close"]))


def choose_verdict(logits: torch.Tensor, labels: torch.Tensor, accept: float = 0.999,
                   sure_accuracy: float = 0.998, writers: torch.Tensor | None = None) -> Verdict:
    """Fit the temperature, then the thresholds on validation logits (N, 11) and labels (N,):

    - reject: the lowest threshold that still accepts ``accept`` of the real digits written
      as other writers write (``writers``, bool (N,): the validation digits redrawn with other
      pens, shapes and scans; all digits when None), so that as many negatives as possible are
      refused at that acceptance. Refusing a person's digit costs more than letting a rare
      scribble through, and a threshold set on MNIST's own clean digits refuses other writers'
      (10% of low-resolution scans, where it was set on clean digits);
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
