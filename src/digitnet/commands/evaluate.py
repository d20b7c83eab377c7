"""``digitnet evaluate``: measure a saved model on the test set; write evaluation.json
(evaluation-<dataset>.json for a dataset other than the run's own)."""

from __future__ import annotations

import torch
from rich.table import Table

from digitnet import atomic, runs
from digitnet.commands.common import add_run_option, console
from digitnet.datasets import SPECS, load
from digitnet.evaluate import evaluate
from digitnet.preprocess import input_tensor
from digitnet.runs.run import Run


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a trained model on a test set")
    add_run_option(p)
    p.add_argument("--dataset", choices=sorted(SPECS), help="default: the one it was trained on")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files")
    p.set_defaults(run=run)


def run(args) -> int:
    args.run_dir = runs.resolve_run_dir(args.run_dir)
    opened = Run.open(args.run_dir)
    model, config = opened.model(), opened.config
    ds = load(args.dataset or config.dataset, args.data_dir)
    result = evaluate(model, input_tensor(ds.x_test), torch.from_numpy(ds.y_test).long())
    classes = config.class_names(ds.classes)
    report = {"dataset": ds.name, **result.to_dict(classes)}
    # another dataset's figures go beside the run's own, never over them
    own = ds.name == config.dataset
    written = args.run_dir / ("evaluation.json" if own else f"evaluation-{ds.name}.json")
    atomic.write_json(written, report)

    out = console()
    if not own:
        out.print(f"note: {args.run_dir} was trained on {config.dataset}; its answers are scored "
                  f"against {ds.name}'s labels")
    out.print(f"{args.run_dir}: {ds.name} test set, {result.images} images")
    out.print(f"test loss {result.loss:.4f}  test accuracy {result.accuracy:.4f}")
    table = Table("class", "name", "images", "accuracy")
    totals = result.confusion.sum(axis=1)
    for c, name in enumerate(classes):
        table.add_row(str(c), name, str(totals[c]), f"{result.per_class_accuracy[c]:.4f}")
    out.print(table)
    out.print(f"wrote {written}")
    return 0
