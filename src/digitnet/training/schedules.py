"""Learning rates per step, for every loop that trains: the digit runs, fine-tuning, the line reader.

Each is a pure function of the step (or, for the line reader, torch's scheduler object), so a
resumed run sets the same rate at the same step. The formulas are written once here; their
arithmetic is kept exactly as each loop first used it, since a rate one rounding step apart
makes other weights, and the bundled models must come out of the committed code bit for bit.

  constant   the tutorial's: ``peak`` at every step
  one_cycle  digit runs (``--schedule onecycle``): linear warm-up from 10% of the peak, then
             ``cosine`` down to 2% of it
  cosine     fine-tuning: no warm-up (it starts from trained weights), straight down to 2%
  line_one_cycle  the line reader: torch's ``OneCycleLR``, which also cycles Adam's beta1
             (0.95 -> 0.85 -> 0.95) and starts and ends far lower (peak / 25, peak / 250,000);
             the shipped line reader was trained with it
"""

from __future__ import annotations

import math

import torch

from digitnet.runs.config import TrainConfig

FLOOR = 0.02  # where the cosine ends, as a share of the peak
WARM_START = 0.1  # where the one-cycle warm-up starts, as a share of the peak


def cosine(peak: float, done: float, total: float) -> float:
    """The rate ``done`` of ``total`` into a half cosine from ``peak`` down to ``FLOOR * peak``."""
    return peak * (FLOOR + 0.98 * 0.5 * (1 + math.cos(math.pi * done / total)))


def one_cycle(peak: float, step: int, total_steps: int, warmup: float) -> float:
    """The rate at global ``step`` of ``total_steps``: the first ``warmup`` share of the steps
    rises linearly from ``WARM_START * peak`` to ``peak``, the rest follows ``cosine``."""
    warm = max(1, int(warmup * total_steps))
    if step < warm:
        return peak * (WARM_START + 0.9 * step / warm)
    progress = (step - warm) / max(1, total_steps - warm)
    return cosine(peak, min(progress, 1.0), 1)


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """A digit run's rate at global ``step``: ``config.schedule`` at ``config.lr``."""
    if config.schedule == "constant":
        return config.lr
    return one_cycle(config.lr, step, total_steps, config.warmup)


def line_one_cycle(optimizer: torch.optim.Optimizer, peak: float, total_steps: int,
                   warmup: float) -> torch.optim.lr_scheduler.OneCycleLR:
    """The line reader's schedule: step it after every optimizer step."""
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, peak, total_steps=total_steps,
                                               pct_start=warmup)
