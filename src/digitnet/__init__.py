"""digitnet: train, evaluate and use a convolutional network that reads handwritten digits.

The tutorial's steps are at the top level (``digitnet.datasets``, ``digitnet.preprocess``,
``digitnet.models``, ``digitnet.evaluate``); the rest is in subpackages by concern
(``training``, ``vision``, ``inference``, ``plots``, ``web``, ``benchmarks``). Each is imported
on first use, so ``import digitnet`` stays fast and ``digitnet.datasets.mnist`` still works.
"""

import importlib

__version__ = "0.1.0"

SUBMODULES = ("datasets", "preprocess", "models", "evaluate", "training", "vision", "inference",
              "plots", "web", "benchmarks")


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"digitnet.{name}")
    raise AttributeError(f"module 'digitnet' has no attribute {name!r}")
