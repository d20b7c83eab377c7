"""digitnet: train, evaluate and use a convolutional network that reads handwritten digits."""

__version__ = "0.1.0"
