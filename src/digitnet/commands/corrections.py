"""``digitnet corrections list | export | delete``: people's corrections, kept by ``digitnet serve``."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from digitnet.commands.common import console
from digitnet.corrections import export, store
from digitnet.errors import DigitnetError

DEFAULT_DB = Path("store") / store.FILE_NAME


def register(sub) -> None:
    p = sub.add_parser("corrections", help="list, export or delete the corrections people sent",
                       description="The corrections the page's Right/Wrong buttons (or POST "
                                   "/api/corrections) stored.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="the newest corrections, newest first")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20; 0: all)")

    out = actions.add_parser("export", help="the labelled 28x28 images as MNIST IDX files or PNGs")
    out.add_argument("--format", choices=export.FORMATS, default="idx",
                     help="idx: the four MNIST files (training: for fine-tuning; test: every "
                          "fifth correction, held out); png: a folder per label (default idx)")
    out.add_argument("--out", type=Path, required=True, help="a new or empty folder")

    gone = actions.add_parser("delete", help="delete corrections, their images overwritten")
    gone.add_argument("ids", type=int, nargs="*", metavar="ID", help="the ids 'list' shows")
    gone.add_argument("--all", action="store_true", help="delete every correction")

    for action in (listing, out, gone):
        action.add_argument("--db", type=Path, default=DEFAULT_DB,
                            help=f"the corrections database (default {DEFAULT_DB})")
    p.set_defaults(run=run)


def run(args) -> int:
    return {"list": show, "export": write, "delete": delete}[args.action](args)


def show(args) -> int:
    if args.limit < 0:
        raise DigitnetError(f"--limit must be 0 (all) or positive, got {args.limit}")
    rows = store.summaries(args.db, args.limit or None)
    table = Table("id", "time (UTC)", "kind", "answer", "confidence", "label", "model", "image",
                  box=None, pad_edge=False)
    for r in rows:
        table.add_row(str(r.id), r.created[:19].replace("T", " "), r.kind, r.answer,
                      f"{r.confidence:.1%}", r.label, r.model_run, f"{r.image_bytes / 1024:.1f} KB")
    out = console()
    out.print(table)
    out.print(f"{len(rows)} of {store.count(args.db)} corrections in {args.db}", soft_wrap=True)
    return 0


def write(args) -> int:
    data = store.labelled(args.db)
    written = export.write(data, args.format, args.out)
    train, held = data.split()
    console().print(f"{len(data)} labelled images ({len(train)} to learn from, {len(held)} held "
                    f"out) as {len(written)} {args.format.upper()} files in {args.out}", soft_wrap=True)
    return 0


def delete(args) -> int:
    if args.all == bool(args.ids):
        raise DigitnetError("name the ids to delete, or pass --all (not both)")
    found = store.delete(args.db, None if args.all else args.ids)
    missing = sorted(set(args.ids) - set(found))
    console().print(f"deleted {len(found)} corrections from {args.db}"
                    + (f"; no correction {', '.join(map(str, missing))}" if missing else ""),
                    soft_wrap=True)
    return 0
