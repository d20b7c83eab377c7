"""The line reader: a ``LineNet`` that reads a whole line of digits, and the decoding of its
output into digits with honest probabilities.

The network gives, for every column of ``frame`` pixels (2 or 4), probabilities over the ten digits and
"no digit here" (CTC's blank). Decoding takes the most probable class of each column, merges
repeats and drops blanks (CTC's best path). Each digit's probability is the network's at the
column where it was surest; the whole number's is the CTC probability of its digit string
(the sum over every way of placing those digits in the columns), so a line that could also be
read with a digit more or less is not called certain. The temperature fitted on validation
lines is folded into the network, as for the digit reader.

A line reader is one safetensors file whose metadata holds its architecture and the verdict's
``close`` ratio. The package ships one (``bundled/lines/line-reader.safetensors``, made
by ``make line-reader``: ``digitnet train-lines`` with its defaults, then copied in);
``digitnet train-lines --out DIR`` writes ``DIR/line-reader.safetensors``. The saved reader
and its decoding sit here, beneath training and inference, because both use them: training
measures the reader it saved, inference reads numbers with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from digitnet.errors import DigitnetError
from digitnet.models import LineNet
from digitnet.runs import read_safetensors
from digitnet.runs.calibration import Verdict, decide
from digitnet.threads import torch_threads
from digitnet.vision.numbers import LineDigit

WEIGHTS_FILE = "line-reader.safetensors"
BUNDLED = Path(__file__).resolve().parent.parent / "bundled" / "lines" / WEIGHTS_FILE
FORMAT = "digitnet-line-reader"


def decode(probs: np.ndarray, close: float) -> tuple[list[LineDigit], float]:
    """(T, 11) column probabilities -> the digits of CTC's best path, and the probability of
    that digit string under the network (1.0 - the chance it is anything else)."""
    best = probs.argmax(axis=1)  # (T,)
    starts = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])  # where each run of a class begins
    ends = np.r_[starts[1:], len(best)]
    peaks = [s + int(probs[s:e, best[s]].argmax()) for s, e in zip(starts, ends, strict=True)
             if best[s] != LineNet.BLANK]
    at_peaks = torch.from_numpy(probs[peaks]).reshape(len(peaks), probs.shape[1])  # (K, 11)
    # reject=1.0: a column whose most probable class is a digit is never "not a digit" here
    answer, runner_up, unsure = decide(at_peaks, Verdict(reject=1.0, close=close))
    digits = [LineDigit(int(a), round(float(at_peaks[k, a]), 6), int(r), bool(u), t)
              for k, (a, r, u, t) in enumerate(zip(answer, runner_up, unsure, peaks, strict=True))]
    return digits, string_probability(probs, [d.digit for d in digits])


def string_probability(probs: np.ndarray, digits: list[int]) -> float:
    """The CTC probability of the digit string ``digits`` given (T, 11) column probabilities."""
    log_probs = torch.from_numpy(np.log(np.maximum(probs, 1e-30)))[:, None]  # (T, 1, 11)
    nll = F.ctc_loss(log_probs, torch.tensor([digits], dtype=torch.long).reshape(1, -1),
                     torch.tensor([len(probs)]), torch.tensor([len(digits)]),
                     blank=LineNet.BLANK, reduction="sum", zero_infinity=False)
    return round(float(torch.exp(-nll)), 6)


class LineReader:
    """A line reader in eval mode; ``source`` says where its weights came from."""

    def __init__(self, model: LineNet, close: float, source: str) -> None:
        self.model = model.eval()
        self.close = close
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> LineReader:
        """The reader in ``path`` (a file, or a directory holding line-reader.safetensors);
        without a path, the one shipped in the package."""
        path = BUNDLED if path is None else Path(path)
        if path.is_dir():
            if not (path / WEIGHTS_FILE).is_file():
                raise DigitnetError(f"{path}: no {WEIGHTS_FILE} here; this is not a line reader "
                                    f"(train one with 'digitnet train-lines', or leave --run out "
                                    f"to use the one in the package)")
            path = path / WEIGHTS_FILE
        tensors, metadata = read_safetensors(path, "line reader")
        if metadata.get("format") != FORMAT:
            raise DigitnetError(f"{path}: not a line reader (written by 'digitnet train-lines'); "
                                f"leave --run out to use the one in the package")
        try:
            model = LineNet(**json.loads(metadata["model_args"]))
            model.load_state_dict(tensors, strict=True)
            close = float(metadata["close"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise DigitnetError(f"{path}: damaged line reader ({str(e).splitlines()[0]}); train it "
                                f"again with 'digitnet train-lines'") from e
        return cls(model, close, str(path))

    @torch.inference_mode()
    def frame_probabilities(self, line: np.ndarray) -> np.ndarray:
        """uint8 (32, W) line -> float32 (W / frame, 11) probabilities, one row per ``frame``
        columns."""
        x = torch.from_numpy(line.astype(np.float32) / 255.0)[None, None]  # (1, 1, 32, W)
        with torch_threads(1):  # one small image: splitting it over threads costs more than it saves
            return torch.softmax(self.model(x)[0].float(), dim=-1).numpy()

    @property
    def frame(self) -> int:
        """Input columns per output column: a digit's ``frame`` index times this is its place."""
        return self.model.frame

    def read(self, line: np.ndarray) -> tuple[list[LineDigit], float]:
        """The digits on a uint8 (32, W) line, left to right, and the whole string's probability."""
        return decode(self.frame_probabilities(line), self.close)
