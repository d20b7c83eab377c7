"""The one typed configuration of a training run, saved into every run and checkpoint.

Defaults are the Keras tutorial's exact settings. Each field's help text is the one
``digitnet train --help`` shows, so a default is written in one place only; a recipe
(``digitnet.training.recipes``) or the command line overrides them.
``TrainConfig.from_dict(config.to_dict())`` round-trips, which is how a run directory is
resumed or rebuilt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from digitnet.datasets.registry import SPECS
from digitnet.errors import DigitnetError

PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "onecycle")


DEVICES = ("auto", "cpu", "cuda", "mps")
NOT_A_DIGIT = 10  # the class of everything that is not a digit, in models trained with negatives
NOT_A_DIGIT_NAME = "not a digit"


def option(default: Any, help: str, *, choices: tuple[str, ...] | None = None,
           flag: bool = True) -> Any:
    """A field with its ``digitnet train`` option: the default and help text live here only."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag})


@dataclass
class TrainConfig:
    # what to learn
    dataset: str = option("mnist", "which dataset", choices=tuple(SPECS))
    limit: int = option(0, "train on the first N training images only; 0 = all 60,000")
    validation: int = option(0, "hold out the last N training images to measure on; 0 = none")
    model: str = option("tutorial_cnn", "architecture (a key of digitnet.models.ARCHITECTURES)")
    model_args: dict[str, Any] = field(default_factory=dict,
                                       metadata={"help": "the architecture's arguments", "flag": False})
    recipe: str = option("tutorial", "the named preset these values started from", flag=False)

    # how to learn it
    epochs: int = option(1, "passes over the training images")
    batch_size: int = option(32, "images per optimizer step over ALL processes (the global batch), "
                                 "so the learning rate needs no change under torchrun")
    optimizer: str = option("adam", "adam (the tutorial's), adamw, or sgd with Nesterov momentum",
                            choices=OPTIMIZERS)
    lr: float = option(1e-3, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum, or Adam's beta1")
    weight_decay: float = option(0.0, "weight decay: decoupled for adamw, L2 for sgd")
    schedule: str = option("constant", "learning rate per step: constant, or onecycle (warm-up "
                                       "then cosine decay)", choices=SCHEDULES)
    warmup: float = option(0.2, "onecycle: the fraction of all steps spent warming up")
    label_smoothing: float = option(0.0, "cross-entropy label smoothing")
    ema: float = option(0.0, "decay of an exponential moving average of the weights; 0 = off")
    augment: bool = option(False, "random shifts, rotations, scaling and elastic distortion")
    writers: bool = option(False, "train for other writers, pens and scans: strong warps and "
                                  "slant, stroke width, low resolution, blur, noise, bad crops")
    negatives: int = option(0, "add N 'not a digit' images (Fashion-MNIST, rendered letters, "
                               "scribbles, shapes, specks) as an 11th class; 0 = none")

    # how to run it
    seed: int = option(0, "seed for weights, data order and dropout")
    precision: str = option("auto", "auto: bf16 where the CPU or GPU computes it natively "
                                    "(AVX512-BF16, AMX, CUDA), else fp32", choices=PRECISIONS)
    channels_last: bool = option(False, "NHWC memory layout for the convolutions (auto-chosen "
                                        "where measured faster)")
    threads: int = option(0, "torch intra-op threads; 0 = one per core")
    device: str = option("auto", "auto: a CUDA or Apple GPU when there is one, else cpu",
                         choices=DEVICES)
    deterministic: bool = option(False, "deterministic kernels, every seed and a fixed thread "
                                        "count: a rerun with the same seed, fp32 and number of "
                                        "processes gives identical weights")
    target_accuracy: float = option(0.0, "stop once validation accuracy reaches this fraction "
                                         "(needs --validation); 0 = off")
    checkpoint_every: int = option(0, "also save a checkpoint every N steps; 0 = at epoch ends")
    tensorboard: bool = option(False, "also log the run for TensorBoard into RUN_DIR/tensorboard: "
                                      "loss, accuracy, learning rate and step time, the graph, "
                                      "sample images and mistakes, weight histograms (needs "
                                      "pip install 'digitnet[tensorboard]')")
    eval_batch_size: int = option(1000, "images per forward pass when measuring")

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
        need(self.negatives >= 0, f"--negatives must be 0 or positive, got {self.negatives}")
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

    @property
    def num_classes(self) -> int:
        """10 digits, plus class 10 ("not a digit") when trained with negatives."""
        return 11 if self.negatives else 10

    def class_names(self, dataset_classes: tuple[str, ...]) -> tuple[str, ...]:
        """The model's output classes: the dataset's, then "not a digit" with negatives."""
        return dataset_classes + ((NOT_A_DIGIT_NAME,) if self.negatives else ())

    @property
    def classes(self) -> tuple[str, ...]:
        """``class_names`` of the dataset the model was trained on."""
        return self.class_names(SPECS[self.dataset].classes)

    def model_kwargs(self) -> dict[str, Any]:
        """Arguments of ``build_model`` for this config: its classes, then model_args."""
        return {"num_classes": self.num_classes, **self.model_args}

    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        """The fields that ``digitnet train`` offers as options, in declaration order."""
        return [f for f in dataclasses.fields(cls) if f.metadata.get("flag", True)]

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
