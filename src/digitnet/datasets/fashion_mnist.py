"""Fashion-MNIST with the Keras API: ``load_data()`` returns ``(x_train, y_train), (x_test, y_test)``."""

from digitnet.datasets.sources import load


def load_data(path=None):
    """uint8 arrays (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), as in Keras."""
    ds = load("fashion-mnist", path)
    return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)
