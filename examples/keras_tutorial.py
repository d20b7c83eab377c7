"""The Keras beginner tutorial's MNIST convnet, with digitnet supplying the data.

Only two imports differ from the tutorial: ``mnist.load_data`` and ``to_categorical`` come
from digitnet (checked files, no download needed). The model is the tutorial's, with the
pooling, dropout and Flatten layers its final listing forgot. Keras 3 runs it on its torch
backend: ``pip install 'digitnet[keras]'`` then

    python examples/keras_tutorial.py [--limit N] [--test-limit N] [--epochs 1] [--seed S]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # must be set before keras is imported

import keras  # noqa: E402
from keras.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D  # noqa: E402
from keras.models import Sequential  # noqa: E402

from digitnet.datasets import mnist  # noqa: E402  (instead of keras.datasets.mnist)
from digitnet.preprocess import to_categorical  # noqa: E402  (instead of keras.utils)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--limit", type=int, default=60000, help="train on the first N images")
parser.add_argument("--test-limit", type=int, default=10000, help="test on the first N test images")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--seed", type=int, default=None,
                    help="seed Python, numpy and the backend: the same weights and result each run")
args = parser.parse_args()
if args.seed is not None:
    keras.utils.set_random_seed(args.seed)

# Step 1: load the data.
(X_train, y_train), (X_test, y_test) = mnist.load_data()
X_train, y_train = X_train[: args.limit], y_train[: args.limit]
X_test, y_test = X_test[: args.test_limit], y_test[: args.test_limit]

# Step 3: add the channel axis (channels-last, Keras's default).
X_train = X_train.reshape(len(X_train), 28, 28, 1)
X_test = X_test.reshape(len(X_test), 28, 28, 1)

# Step 4: float32 in [0, 1] and one-hot labels.
X_train = X_train.astype("float32") / 255
X_test = X_test.astype("float32") / 255
y_train = to_categorical(y_train, 10)
y_test = to_categorical(y_test, 10)

# Step 5: the model. Dropout(0.25) drops a quarter of the units.
model = Sequential([
    Input(shape=(28, 28, 1)),
    Conv2D(32, kernel_size=3, activation="relu"),
    Conv2D(32, kernel_size=3, activation="relu"),
    MaxPooling2D(pool_size=2),
    Dropout(0.25),
    Flatten(),
    Dense(128, activation="relu"),
    Dropout(0.5),
    Dense(10, activation="softmax"),
])
model.summary()

# Step 6: categorical cross-entropy with Adam, batch size 32.
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, batch_size=32, epochs=args.epochs, validation_data=(X_test, y_test))

# Step 7: evaluate on the test set.
loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
print(f"test loss {loss:.4f}  test accuracy {accuracy:.4f}")
