"""Random numbers of a run: one seed for the initial weights, one stream per process for what
is drawn after that (dropout, augmentation), and their state for checkpoints."""

from __future__ import annotations

import math
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def stream_seed(seed: int, rank: int, step: int = 0) -> int:
    """A seed for process ``rank``'s random draws (dropout), independent of other ranks' seeds.

    Every process builds the same initial weights from ``seed``; the draws after that must differ
    between processes, or all shards of a batch would share one dropout mask.
    """
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0] >> 1)


def seed_streams(seed: int, rank: int, step: int = 0) -> None:
    """Seed torch (CPU and GPU), NumPy and Python for what this process draws from now on."""
    value = stream_seed(seed, rank, step)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Every random stream a training step may draw from, as tensors (for a checkpoint)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    _, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(keys.astype(np.int64)),  # (624,) Mersenne Twister words
        "numpy_pos": torch.tensor([pos, has_gauss, gauss], dtype=torch.float64),
        "python": torch.tensor(internal, dtype=torch.int64),  # (625,) words and position
        "python_gauss": torch.tensor([math.nan if gauss_next is None else gauss_next],
                                     dtype=torch.float64),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore what ``rng_state`` captured."""
    torch.set_rng_state(state["torch"])
    pos, has_gauss, gauss = state["numpy_pos"].tolist()
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(pos),
                         int(has_gauss), gauss))
    gauss_next = state["python_gauss"].item()
    random.setstate((3, tuple(state["python"].tolist()), None if math.isnan(gauss_next) else gauss_next))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
