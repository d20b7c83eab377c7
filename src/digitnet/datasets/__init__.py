"""Datasets in the MNIST format: ``mnist`` and ``fashion_mnist``, loaded as Keras loads them.

>>> from digitnet.datasets import mnist
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()
"""

from digitnet.datasets import fashion_mnist, mnist
from digitnet.datasets.registry import SPECS, get_spec
from digitnet.datasets.sources import Dataset, load

__all__ = ["SPECS", "Dataset", "fashion_mnist", "get_spec", "load", "mnist"]
