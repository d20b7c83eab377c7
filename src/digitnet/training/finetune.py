"""Fine-tuning a served model on people's corrections, without forgetting MNIST.

Starting from a run's weights, a short AdamW run learns from batches that are a small part
corrections and the rest what the model was trained on (MNIST training digits, and "not a
digit" images for a reader), each with its own augmentation. Three things keep it from
forgetting, because a style people correct is often close to another digit (a 1 with a long
flag is most of a 7):

- rehearsal: half of the old images in each batch are of the classes the model mistook the
  corrections for (the 7s, for those 1s), so the border between the two is learnt from both
  sides rather than moved;
- distillation: on the old images the model is also pulled towards what it answered before
  fine-tuning (the KL divergence to its own earlier probabilities), which keeps everything
  the labels alone do not pin down;
- BatchNorm layers keep the statistics they were trained with: a few hundred mixed batches
  would otherwise shift them towards the corrections.

Every fifth correction (by id) is held out to measure what was learnt.

The new weights are measured before and after on the held-out corrections and on the MNIST
test set, which no client can write to; nothing is written when the model's answers there
move (``guard``): its accuracy falls by more than ``max_drop``, one class's by more than
``max_class_drop`` (a targeted relabelling, one writing style of a 7 taught as a 1, hardly
moves the whole but takes a class's share), or more than ``max_moved`` of its answers change.
A calibrated reader is calibrated again on the validation split it was
calibrated on before (never trained on, here either), so its verdicts ("not a digit", "4 or
9?") keep their meaning.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from digitnet import atomic, runs
from digitnet.corrections.store import HOLDOUT_EVERY, Labelled
from digitnet.datasets import Dataset, load
from digitnet.errors import DigitnetError
from digitnet.evaluate import Evaluation, from_sums, predict_logits, sums_of
from digitnet.models import count_parameters
from digitnet.preprocess import input_tensor
from digitnet.runs.config import NOT_A_DIGIT, TrainConfig
from digitnet.runs.run import Run
from digitnet.training import devices, negatives, schedules
from digitnet.training.augment import Augmentation, for_run
from digitnet.training.calibrate import fit_verdict, on_top
from digitnet.training.epoch import make_optimizer


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 120  # optimizer steps
    batch_size: int = 128
    share: float = 0.15  # of each batch drawn from the corrections, the rest from the old data
    protect: float = 0.5  # of the old images: of the classes the corrections were mistaken for
    distill: float = 3.0  # weight of the pull towards the earlier answers on the old images
    lr: float = 5e-4  # peak AdamW learning rate, decayed along a cosine to 2% of it
    weight_decay: float = 0.0
    holdout_every: int = HOLDOUT_EVERY  # corrections whose id is a multiple are held out
    negatives: int = 4_000  # "not a digit" images mixed in, for a model with that class
    max_drop: float = 0.001  # refuse when MNIST test accuracy falls by more than this (0.1 points)
    max_class_drop: float = 0.01  # ... or one digit's accuracy there by more than this (1 point)
    max_moved: float = 0.02  # ... or more than this share of its answers there change (2%)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise DigitnetError("--steps must be at least 1 and the batch at least 2 images")
        if not 0 < self.share < 1:
            raise DigitnetError(f"the corrections' share of a batch is in (0, 1), got {self.share}")


@dataclass
class Outcome:
    """What fine-tuning did: the figures before and after, and whether the model was kept."""

    before: dict[str, float | None]  # accuracy on mnist_test and held_out (None: no corrections held out)
    after: dict[str, float | None]
    corrections: dict[str, int]  # learnt, held_out, skipped (a class the model does not have)
    refused: str | None  # why the model was not written (``guard``); None: it was
    seconds: float
    train_seconds: float
    precision: str  # of the training steps; every figure is measured in fp32
    run_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.refused is None

    @property
    def mnist_change(self) -> float:
        return self.after["mnist_test"] - self.before["mnist_test"]


def guard(fc: FinetuneConfig, before: Evaluation, after: Evaluation, moved: float,
          classes: tuple[str, ...]) -> str | None:
    """Why a fine-tuned model may not be written, judged on held-out data no client can write
    to (the MNIST test set): its answers there may not move. None when they hold."""
    if after.accuracy < before.accuracy - fc.max_drop - 1e-9:
        return (f"MNIST test accuracy fell by {before.accuracy - after.accuracy:.2%}, more than the "
                f"{fc.max_drop:.1%} allowed")
    drops = before.per_class_accuracy - after.per_class_accuracy
    worst = int(np.argmax(drops))
    if drops[worst] > fc.max_class_drop + 1e-9:
        return (f"MNIST test accuracy of {classes[worst]!r} fell by {drops[worst]:.2%}, more than the "
                f"{fc.max_class_drop:.1%} allowed: the corrections may relabel one kind of writing")
    if moved > fc.max_moved + 1e-9:
        return (f"{moved:.2%} of the answers on the MNIST test set changed, more than the "
                f"{fc.max_moved:.1%} allowed")
    return None


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """Channels-last images: with the model in that layout, oneDNN's faster convolutions
    (half the time of NCHW for a reader's evaluation on a Xeon)."""
    return x.contiguous(memory_format=torch.channels_last)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float | None:
    """Top-class accuracy (over every class the model has); None for no images."""
    if not len(y):
        return None
    return float((predict_logits(model, nhwc(x)).argmax(1) == y).float().mean())


def old_data(ds: Dataset, config: TrainConfig, n_negatives: int, data_dir: str | Path | None,
             rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, y) to keep the model's skills with, and (x, y) to calibrate on: MNIST's training
    digits split as the run was trained (its --limit and --validation: the validation digits
    are never learnt from), with "not a digit" images for a model that has that class, in the
    same proportion in both."""
    n = min(config.limit or len(ds.x_train), len(ds.x_train))
    cut = n - config.validation
    x, y = input_tensor(ds.x_train[:cut]), torch.from_numpy(ds.y_train[:cut]).long()
    x_val, y_val = input_tensor(ds.x_train[cut:n]), torch.from_numpy(ds.y_train[cut:n]).long()
    if config.num_classes > NOT_A_DIGIT and n_negatives:
        fashion = negatives.fashion_images(load("fashion-mnist", data_dir))
        n_val = n_negatives * config.validation // cut
        images = input_tensor(negatives.pool(n_negatives + n_val, fashion, rng))
        labels = torch.full((len(images),), NOT_A_DIGIT)
        x, y = torch.cat([x, images[:n_negatives]]), torch.cat([y, labels[:n_negatives]])
        x_val, y_val = torch.cat([x_val, images[n_negatives:]]), torch.cat([y_val, labels[n_negatives:]])
    return x, y, x_val, y_val


def freeze_batchnorm(model: nn.Module) -> None:
    """Training mode, but BatchNorm layers normalise with (and keep) their trained statistics."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def confused_with(model: nn.Module, x: torch.Tensor, y: torch.Tensor, y_old: torch.Tensor) -> torch.Tensor:
    """(len(y_old),) weights: each old image's class, by how often the model mistakes the
    corrections ``x`` (labels ``y``) for it; zero for all when it mistakes none."""
    said = predict_logits(model, nhwc(x)).argmax(1)
    counts = torch.bincount(said[said != y], minlength=int(y_old.max()) + 1).float()
    return counts[y_old]


def tune(model: nn.Module, config: TrainConfig, fc: FinetuneConfig, learn: Labelled,
          x_old: torch.Tensor, y_old: torch.Tensor, generator: torch.Generator, precision: str) -> float:
    """``fc.steps`` steps on mixed batches (in bf16 autocast for ``precision`` "bf16", as the
    reader was trained); the seconds they took."""
    x_new, y_new = input_tensor(learn.x), torch.from_numpy(learn.y).long()
    teacher = copy.deepcopy(model).eval()  # the answers before fine-tuning, to stay close to
    weights = confused_with(teacher, x_new, y_new, y_old)
    k = max(1, round(fc.share * fc.batch_size))
    protected = round(fc.protect * (fc.batch_size - k)) if weights.sum() > 0 else 0
    cpu = torch.device("cpu")
    optimizer = make_optimizer(config.replace(optimizer="adamw", lr=fc.lr, weight_decay=fc.weight_decay),
                               model.parameters(), cpu)
    new_aug, old_aug = Augmentation(), for_run(config) or Augmentation()
    freeze_batchnorm(model)
    started = time.perf_counter()
    for step in range(fc.steps):
        for group in optimizer.param_groups:
            group["lr"] = schedules.cosine(fc.lr, step, fc.steps)
        i = torch.randint(len(x_new), (k,), generator=generator)
        j = torch.cat([torch.randint(len(x_old), (fc.batch_size - k - protected,), generator=generator),
                       torch.multinomial(weights, protected, replacement=True, generator=generator)
                       if protected else torch.zeros(0, dtype=torch.long)])
        x_rest = nhwc(old_aug(x_old[j]))
        with devices.autocast(precision, cpu):
            logits = model(nhwc(torch.cat([new_aug(x_new[i]), x_rest]))).float()
        loss = F.cross_entropy(logits, torch.cat([y_new[i], y_old[j]]),
                               label_smoothing=config.label_smoothing)
        if fc.distill:
            with torch.no_grad(), devices.autocast(precision, cpu):
                before = torch.softmax(teacher(x_rest).float(), dim=1)
            loss = loss + fc.distill * F.kl_div(F.log_softmax(logits[k:], dim=1), before,
                                                reduction="batchmean")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    return time.perf_counter() - started


def calibrate_again(model: nn.Module, previous: dict[str, Any] | None, x_val: torch.Tensor,
                    y_val: torch.Tensor) -> dict[str, Any] | None:
    """``calibrate.fit_verdict`` again on the plain validation split, for a run that was
    calibrated, with the temperature folded in on top of the earlier one. Without a validation
    split to fit on, the record is kept as it was."""
    if not previous or not len(y_val):
        return previous
    return on_top(fit_verdict(model, predict_logits(model, nhwc(x_val)), y_val), previous)


def test_scores(model: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor, held: Labelled
            ) -> tuple[dict[str, float | None], Evaluation, torch.Tensor]:
    """Accuracy on the MNIST test set and the held-out corrections, in fp32 as every figure of
    a run is measured, and the answers on the test set ((N,) class indices)."""
    logits = predict_logits(model, x_test)  # (N, classes): one pass gives both figures
    test, answers = from_sums(sums_of(logits, y_test)), logits.argmax(1)
    return ({"mnist_test": test.accuracy,
             "held_out": accuracy(model, input_tensor(held.x), torch.from_numpy(held.y).long())},
            test, answers)


def usable(data: Labelled, num_classes: int) -> tuple[Labelled, int]:
    """The corrections the model can learn (a 10-class model has no "not a digit"), and how
    many were left out."""
    keep = data.y < num_classes
    return data.take(keep), int((~keep).sum())


def finetune(start: Run | Path, data: Labelled, fc: FinetuneConfig, out: Path, *,
             data_dir: str | Path | None = None, dataset: Dataset | None = None,
             progress: Callable[[str], None] = lambda _: None) -> Outcome:
    """Fine-tune the run ``start`` (opened, or its directory) on the corrections ``data``; write
    the run ``out`` only when MNIST test accuracy holds (``Outcome.accepted``)."""
    started = time.perf_counter()
    start = start if isinstance(start, Run) else Run.open(start)
    model, config = start.model().to(memory_format=torch.channels_last), start.config
    precision = devices.resolve_precision("auto", torch.device("cpu"))
    data, skipped = usable(data, config.num_classes)
    learn, held = data.split(fc.holdout_every)
    if not len(learn):
        raise DigitnetError(f"no corrections to learn from ({len(held)} held out, {skipped} of a "
                            "class the model lacks); collect more with the page's Right/Wrong buttons")
    torch.manual_seed(fc.seed)
    generator = torch.Generator().manual_seed(fc.seed)
    progress("loading MNIST and measuring the model as it is")
    ds = dataset or load("mnist", data_dir)
    x_old, y_old, x_val, y_val = old_data(ds, config, fc.negatives, data_dir,
                                          np.random.default_rng(fc.seed))
    x_test, y_test = nhwc(input_tensor(ds.x_test)), torch.from_numpy(ds.y_test).long()
    before, test_before, answers_before = test_scores(model, x_test, y_test, held)
    progress(f"fine-tuning: {fc.steps} steps on {len(learn)} corrections mixed with {len(x_old):,} "
             "old images")
    train_seconds = tune(model, config, fc, learn, x_old, y_old, generator, precision)
    cal = calibrate_again(model, start.metrics.get("calibration"), x_val, y_val)
    after, test, answers_after = test_scores(model, x_test, y_test, held)
    moved = float((answers_after != answers_before).float().mean())
    outcome = Outcome(before, after, {"learnt": len(learn), "held_out": len(held), "skipped": skipped},
                      refused=guard(fc, test_before, test, moved, config.classes),
                      seconds=0.0, train_seconds=train_seconds, precision=precision)
    outcome.before["mnist_moved"], outcome.after["mnist_moved"] = 0.0, moved
    if outcome.accepted:
        write_run(out, model, config, ds, start, fc, outcome, cal, test)
    outcome.seconds = time.perf_counter() - started
    return outcome


def write_run(out: Path, model: nn.Module, config: TrainConfig, ds: Dataset, start: Run,
              fc: FinetuneConfig, outcome: Outcome, cal: dict[str, Any] | None, test: Evaluation) -> None:
    """A run directory like ``digitnet train``'s, with where it came from under "finetune"."""
    origin = {"from_run": str(start.path.resolve()), "from_sha256": start.weights_sha256,
              "settings": asdict(fc), "corrections": outcome.corrections}
    atomic.make_folder(out)
    runs.write_config(out, config, dataset_sha256=ds.sha256, parameters=count_parameters(model),
                      finetune=origin)
    runs.save_model(out, model, config)
    outcome.metrics = {
        "run_dir": str(out),
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "train_seconds": outcome.train_seconds,
        "precision": outcome.precision,
        "per_class_accuracy": test.to_dict(config.classes)["per_class_accuracy"],
        "calibration": cal,
        "confusion": test.confusion.tolist(),
        "finetune": {"before": outcome.before, "after": outcome.after, **origin},
    }
    runs.write_metrics(out, outcome.metrics)
    outcome.run_dir = out
