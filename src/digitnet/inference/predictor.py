"""Using a trained model: class probabilities for batches of 28x28 images.

``Predictor`` is what ``predict``, ``read`` and the web server call; it hides which runtime
executes the network (``backend``), so all of them gain from a faster one at once:

- ``torch``: the PyTorch model in eager mode (fp32, or bf16 autocast with ``precision="bf16"``),
  channels-last, under ``inference_mode``, on one thread for a few images.
- ``onnx``: the run's ``model.onnx`` (written by ``digitnet export``) in onnxruntime; several
  times faster on CPU. A missing, corrupt or stale model.onnx is refused with one line.
- ``onnx-int8``: the run's ``model-int8.onnx`` (``inference.quantize``, written by ``digitnet
  export`` beside model.onnx): about twice as fast again on one thread, its answers checked to
  be the float model's; only when asked for, since its probabilities move by a few hundredths.
- ``auto`` (the default): ``onnx`` when the run has a valid, current model.onnx, else ``torch``.
  Inference never exports by itself: exporting takes seconds and writes into the run directory,
  and ``digitnet export`` checks the result against PyTorch before anyone uses it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitnet import runs
from digitnet.errors import DigitnetError
from digitnet.inference import onnx_runtime
from digitnet.models import probabilities
from digitnet.preprocess import input_array
from digitnet.runs import calibration
from digitnet.runs.config import TrainConfig
from digitnet.runs.run import Run
from digitnet.threads import torch_threads

RUNTIMES = ("torch", "onnx", "onnx-int8")  # what actually executes the network
ONNX_FILES = {"onnx": runs.ONNX_FILE, "onnx-int8": runs.INT8_FILE}
BACKENDS = ("auto", *RUNTIMES)  # what a user may ask for; "auto" picks one of RUNTIMES
DEFAULT_BACKEND = "auto"
PRECISIONS = ("fp32", "bf16")
# Up to this many images, torch runs on one thread: splitting a single image over threads
# costs more than it saves and, on a busy machine, makes latency jump (tens of ms).
SMALL_BATCH = 16


class Predictor:
    """Probabilities (N, 10) for MNIST-style images, from a run directory's model.

    ``backend`` is the resolved one (one of RUNTIMES); ``note`` says why ``auto`` chose torch.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, run_dir: Path | None = None,
                 backend: str = "torch", batch_size: int = 1000, *, session=None,
                 precision: str = "fp32", note: str = "",
                 verdict: calibration.Verdict | None = None) -> None:
        if backend not in RUNTIMES:
            raise DigitnetError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        if backend in ONNX_FILES and session is None:
            raise DigitnetError(f"the {backend} backend needs a {ONNX_FILES[backend]}; use "
                                "Predictor.from_run(run_dir)")
        if precision not in PRECISIONS:
            raise DigitnetError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
        # channels-last lets oneDNN pick its faster convolution kernels: about 1.4x at batch 1,000
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.config = config
        self.run_dir = run_dir
        self.backend = backend
        self.batch_size = batch_size
        self.session = session
        self.precision = precision
        self.note = note
        self.verdict = verdict or calibration.Verdict()  # the thresholds the run was calibrated with

    @classmethod
    def from_run(cls, run: Run | str | Path, backend: str = DEFAULT_BACKEND, *, precision: str = "fp32",
                 threads: int = 2) -> Predictor:
        """The run's model on ``backend`` (``run``: an opened ``Run``, or its directory);
        ``threads`` bounds onnxruntime's intra-op threads."""
        if backend not in BACKENDS:
            raise DigitnetError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        run = run if isinstance(run, Run) else Run.open(run)
        session, note = None, ""
        if backend == "onnx-int8":
            session = onnx_runtime.open_int8_session(run, threads)
        elif backend == "onnx" or (backend == "auto" and precision == "fp32"):
            try:
                session = onnx_runtime.open_session(run, threads)
            except DigitnetError as e:
                if backend == "onnx":
                    raise
                note = f"using the torch backend: {e}"
        resolved = backend if backend == "onnx-int8" else "onnx" if session is not None else "torch"
        return cls(run.model(), run.config, run.path, resolved, session=session, precision=precision,
                   note=note, verdict=run.verdict)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    def answers(self, probabilities: np.ndarray) -> list[calibration.Answer]:
        """The verdict on each row of ``probabilities``: "7", "4 or 9?" or "not a digit"."""
        return calibration.answers(probabilities, self.verdict, self.classes)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float32 (N, classes) probabilities for images as ``input_array`` accepts them."""
        x = input_array(images)
        run = self._torch if self.backend == "torch" else self._onnx
        out = [run(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.config.num_classes), np.float32)

    def _onnx(self, x: np.ndarray) -> np.ndarray:
        return onnx_runtime.run_session(self.session, x)

    @torch.inference_mode()
    def _torch(self, x: np.ndarray) -> np.ndarray:
        threads = 1 if len(x) <= SMALL_BATCH else torch.get_num_threads()
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16"
                    else contextlib.nullcontext())
        with torch_threads(threads), autocast:
            x = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)  # (N, 1, 28, 28)
            return probabilities(self.model(x)).numpy()
