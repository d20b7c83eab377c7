"""``digitnet data``: where the dataset came from, its shapes, dtypes and class counts."""

from __future__ import annotations

import numpy as np
from rich.table import Table

from digitnet.commands.common import add_data_options, console
from digitnet.datasets import load


def register(sub) -> None:
    p = sub.add_parser("data", help="load a dataset and describe it")
    add_data_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    ds = load(args.dataset, args.data_dir)
    out = console()
    out.print(f"{ds.name} from {ds.folder} ({ds.origin}), checksums verified")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        a = getattr(ds, name)
        out.print(f"  {name:8s} shape {a.shape!s:16s} dtype {a.dtype}  range [{a.min()}, {a.max()}]")
    out.print(f"  first training labels: {ds.y_train[:10].tolist()}")
    table = Table("class", "name", "train", "test", title="images per class")
    train_counts = np.bincount(ds.y_train, minlength=len(ds.classes))
    test_counts = np.bincount(ds.y_test, minlength=len(ds.classes))
    for c, name in enumerate(ds.classes):
        table.add_row(str(c), name, str(train_counts[c]), str(test_counts[c]))
    out.print(table)
    return 0
