"""The one typed configuration of a training run, saved into every run and checkpoint.

Defaults are the Keras tutorial's exact settings; a recipe (``digitnet.training.recipes``) or the
command line overrides them. ``TrainConfig.from_dict(config.to_dict())`` round-trips, which is
how a run directory is resumed or rebuilt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from digitnet.errors import DigitnetError

PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "onecycle")


@dataclass
class TrainConfig:
    # what to learn
    dataset: str = "mnist"  # "mnist" or "fashion-mnist"
    limit: int = 0  # train on the first N training images only; 0 = all 60,000
    validation: int = 0  # hold out the last N training images to measure on; 0 = none
    model: str = "tutorial_cnn"  # key of digitnet.models.ARCHITECTURES
    model_args: dict[str, Any] = field(default_factory=dict)  # e.g. dropout rates
    recipe: str = "tutorial"  # the named preset these values started from

    # how to learn it
    epochs: int = 1  # passes over the training images
    batch_size: int = 32  # images per optimizer step, summed over all processes
    optimizer: str = "adam"  # "adam" (the tutorial's), "adamw" or "sgd" (Nesterov momentum)
    lr: float = 1e-3  # peak learning rate
    momentum: float = 0.9  # SGD momentum / Adam beta1
    weight_decay: float = 0.0  # decoupled for adamw, L2 for sgd
    schedule: str = "constant"  # "constant" or "onecycle" (warm-up then cosine decay, per step)
    warmup: float = 0.2  # onecycle: fraction of all steps spent warming up
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0 = off
    augment: bool = False  # random shifts, rotations, scaling and elastic distortion

    # how to run it
    seed: int = 0  # weights, data order and dropout all follow from it
    precision: str = "auto"  # "auto" (bf16 where the CPU has it natively), "fp32", "bf16"
    channels_last: bool = False  # NHWC memory layout for the convolutions
    threads: int = 0  # torch intra-op threads; 0 = torch's default (one per core)
    device: str = "auto"  # "auto", "cpu", "cuda" or "mps"
    deterministic: bool = False  # deterministic kernels and fixed threads, for bitwise reruns
    target_accuracy: float = 0.0  # stop once validation accuracy reaches this; 0 = off
    checkpoint_every: int = 0  # also save a checkpoint every N steps; 0 = at epoch ends only
    eval_batch_size: int = 1000  # images per forward pass when measuring

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise DigitnetError(what)

        need(self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}")
        need(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        need(self.lr > 0, f"--lr must be positive, got {self.lr}")
        need(self.limit >= 0, f"--limit must be 0 (all) or positive, got {self.limit}")
        need(self.validation >= 0, f"--validation must be 0 or positive, got {self.validation}")
        need(self.precision in PRECISIONS,
             f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        need(self.optimizer in OPTIMIZERS,
             f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        need(self.schedule in SCHEDULES,
             f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        need(0 <= self.target_accuracy <= 1,
             f"--target-accuracy is a fraction in [0, 1], got {self.target_accuracy}")
        need(0 <= self.ema < 1, f"ema decay must be in [0, 1), got {self.ema}")
        need(self.threads >= 0, f"--threads must be 0 (default) or positive, got {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DigitnetError(
                f"config has unknown keys {sorted(unknown)}; was it written by a newer digitnet?"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
