"""``digitnet summary``: a Keras-style table of the model's layers, output shapes and parameters."""

from __future__ import annotations

from rich.table import Table

from digitnet.commands.common import console
from digitnet.models import ARCHITECTURES, build_model, count_parameters, layer_summary


def register(sub) -> None:
    p = sub.add_parser("summary", help="print each layer's output shape and parameters")
    p.add_argument("--model", default="tutorial_cnn", choices=sorted(ARCHITECTURES))
    p.set_defaults(run=run)


def run(args) -> int:
    model = build_model(args.model)
    table = Table("Layer (type)", "Output Shape", "Param #", title=f"Model: {args.model}")
    for name, kind, shape, params in layer_summary(model):
        table.add_row(f"{name} ({kind})", str(shape), f"{params:,}")
    out = console()
    out.print(table)
    out.print(f"Total params: {count_parameters(model):,}")
    return 0
