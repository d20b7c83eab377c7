"""The verdict rule that turns a reader's 11 calibrated probabilities into "7", "4 or 9?" or
"not a digit", and the record of it a calibrated run keeps (metrics.json's "calibration").

The temperature and thresholds are fitted on a validation split after training
(``digitnet.training.calibrate``); the temperature is folded into the model's last layer, so
every runtime (PyTorch, ONNX, a browser) gives the calibrated probabilities without knowing
about it. The rule itself sits here, beneath training and inference, because both apply it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from digitnet.runs.config import NOT_A_DIGIT, NOT_A_DIGIT_NAME


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
