"""``digitnet corrections list | review | export | delete``: people's corrections, kept by
``digitnet serve``, looked at and accepted before ``digitnet finetune`` learns from them."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from digitnet.commands.common import console
from digitnet.corrections import dataset_files, review, store
from digitnet.errors import DigitnetError

DEFAULT_DB = Path("store") / store.FILE_NAME


def register(sub) -> None:
    p = sub.add_parser("corrections", help="list, review, export or delete the corrections people sent",
                       description="The corrections the page's Right/Wrong buttons (or POST "
                                   "/api/corrections) stored. Each waits for review: "
                                   "'digitnet finetune' learns only from accepted ones.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="the newest corrections, newest first")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20; 0: all)")
    listing.add_argument("--status", choices=store.STATUSES, help="only those pending, accepted or rejected")

    check = actions.add_parser("review", help="a contact sheet of what is pending; accept or reject",
                               description="Without --accept/--reject: write a contact sheet PNG of "
                                           "the pending corrections (each with its id, label and "
                                           "client). With them: mark those corrections.")
    check.add_argument("--sheet", type=Path, default=Path("review.png"),
                       help="where to write the contact sheet (default review.png)")
    check.add_argument("--limit", type=int, default=200, help="corrections on the sheet (default 200)")
    for verdict in ("accept", "reject"):
        check.add_argument(f"--{verdict}", type=int, nargs="+", default=[], metavar="ID",
                           help=f"{verdict} these corrections")
        check.add_argument(f"--{verdict}-client", nargs="+", default=[], metavar="CLIENT",
                           help=f"{verdict} every correction of these clients (the ids 'list' shows)")

    out = actions.add_parser("export", help="the labelled 28x28 images as MNIST IDX files or PNGs")
    out.add_argument("--format", choices=dataset_files.FORMATS, default="idx",
                     help="idx: the four MNIST files (training: for fine-tuning; test: every "
                          "fifth correction, held out); png: a folder per label (default idx)")
    out.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    out.add_argument("--status", choices=store.STATUSES, nargs="+", default=["accepted"],
                     help="which corrections (default: accepted)")

    gone = actions.add_parser("delete", help="delete corrections, their images overwritten")
    gone.add_argument("ids", type=int, nargs="*", metavar="ID", help="the ids 'list' shows")
    gone.add_argument("--client", nargs="+", default=[], metavar="CLIENT",
                      help="every correction of these clients (the client ids 'list' shows)")
    gone.add_argument("--all", action="store_true", help="delete every correction")

    for action in (listing, check, out, gone):
        action.add_argument("--db", type=Path, default=DEFAULT_DB,
                            help=f"the corrections database, or the store folder holding it "
                                 f"(default {DEFAULT_DB})")
    p.set_defaults(run=run)


def run(args) -> int:
    return {"list": show, "review": judge, "export": write, "delete": delete}[args.action](args)


def show(args) -> int:
    if args.limit < 0:
        raise DigitnetError(f"--limit must be 0 (all) or positive, got {args.limit}")
    rows = store.summaries(args.db, args.limit or None, args.status)
    table = Table("id", "time (UTC)", "kind", "answer", "confidence", "label", "model", "client",
                  "status", "image", box=None, pad_edge=False)
    for r in rows:
        table.add_row(str(r.id), r.created[:19].replace("T", " "), r.kind, r.answer,
                      f"{r.confidence:.1%}", r.label, r.model_run, r.client or "-", r.status,
                      f"{r.image_bytes / 1024:.1f} KB")
    out = console()
    out.print(table)
    out.print(f"{len(rows)} of {store.count(args.db)} corrections in {args.db}")
    return 0


def judge(args) -> int:
    out = console()
    marked = False
    for status, ids, clients in (("accepted", args.accept, args.accept_client),
                                 ("rejected", args.reject, args.reject_client)):
        if ids or clients:
            found = store.review(args.db, status, ids, clients)
            missing = sorted(set(ids) - set(found))
            out.print(f"{status} {len(found)} corrections"
                      + (f"; no correction {', '.join(map(str, missing))}" if missing else ""))
            marked = True
    if marked:
        return 0
    if args.limit < 1:
        raise DigitnetError(f"--limit must be at least 1, got {args.limit}")
    pending = store.to_review(args.db, args.limit)
    if not pending:
        out.print(f"nothing pending in {args.db}")
        return 0
    review.write_sheet(pending, args.sheet)
    out.print(f"{len(pending)} pending corrections on {args.sheet}; then 'digitnet corrections review "
              "--accept ID...' or '--reject-client CLIENT'")
    return 0


def write(args) -> int:
    data = store.labelled(args.db, args.status)
    written = dataset_files.write(data, args.format, args.out)
    train, held = data.split()
    console().print(f"{len(data)} labelled images ({len(train)} to learn from, {len(held)} held "
                    f"out) as {len(written)} {args.format.upper()} files in {args.out}")
    return 0


def delete(args) -> int:
    if args.all == bool(args.ids or args.client):
        raise DigitnetError("name the ids or --client to delete, or pass --all (not both)")
    found = store.delete(args.db, None if args.all else args.ids, args.client)
    missing = sorted(set(args.ids) - set(found))
    console().print(f"deleted {len(found)} corrections from {args.db}"
                    + (f"; no correction {', '.join(map(str, missing))}" if missing else ""))
    return 0
