"""``digitnet finetune``: teach the served reader what people corrected, without forgetting MNIST."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from digitnet import runs
from digitnet.commands.common import console
from digitnet.corrections import store
from digitnet.errors import DigitnetError
from digitnet.inference import bundled, served
from digitnet.training.finetune import FinetuneConfig, Outcome, finetune

DEFAULTS = FinetuneConfig()


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune the served reader on people's corrections",
                       description="Learn from the corrections in DB an admin accepted ('digitnet "
                                   "corrections review'), mixed with MNIST so nothing is forgotten; "
                                   "every fifth correction is held out to measure. The new run is "
                                   "written only if its answers on the MNIST test set hold: accuracy "
                                   f"within {DEFAULTS.max_drop:.1%}, each digit's within "
                                   f"{DEFAULTS.max_class_drop:.0%}, at most {DEFAULTS.max_moved:.0%} "
                                   "of answers changed.")
    p.add_argument("--corrections", type=Path, required=True, metavar="DB",
                   help="the corrections database, e.g. store/corrections.sqlite, or the store "
                        "folder holding it")
    p.add_argument("--include-pending", action="store_true",
                   help="also learn from corrections nobody reviewed yet (only for a store whose "
                        "every client you trust)")
    p.add_argument("--run", dest="run_dir", metavar="DIR",
                   help="the run to start from (default: the run the DB's store serves, named in "
                        "served.json beside it, else the bundled reader)")
    p.add_argument("--out", type=Path, help="the new run directory (default runs/<time>-finetune)")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps,
                   help=f"optimizer steps (default {DEFAULTS.steps})")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr,
                   help=f"peak learning rate (default {DEFAULTS.lr})")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the batches (default 0)")
    p.add_argument("--swap", action="store_true",
                   help="serve the new run: name it in the DB's store, which every 'digitnet serve "
                        "--store' process of it watches")
    p.add_argument("--data-dir", default=None,
                   help="folder with the IDX files (default: $DIGITNET_DATA, system, cache)")
    p.set_defaults(run=run)


def start_run(run_dir: str | None, db: Path) -> Path:
    if run_dir is not None:
        return bundled.model_dir(run_dir)
    named = served.read(db.parent)
    return runs.check_run_dir(named) if named is not None else bundled.reader_dir()


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def report(outcome: Outcome, start: Path) -> None:
    out = console()
    c = outcome.corrections
    skipped = f", {c['skipped']} of a class the model lacks left out" if c["skipped"] else ""
    out.print(f"from {start}: {c['learnt']} corrections learnt, {c['held_out']} held out{skipped}")
    for name, key in (("held-out corrections", "held_out"), ("MNIST test", "mnist_test")):
        out.print(f"  {name:21} {percent(outcome.before[key]):>7} -> {percent(outcome.after[key]):>7}")
    out.print(f"  {outcome.seconds:.0f} s in all, {outcome.train_seconds:.0f} s of it training")


def run(args) -> int:
    config = dataclasses.replace(DEFAULTS, steps=args.steps, lr=args.lr, seed=args.seed)
    start = start_run(args.run_dir, args.corrections)
    statuses = ("accepted", "pending") if args.include_pending else ("accepted",)
    data = store.labelled(args.corrections, statuses)
    if not len(data):
        waiting = len(store.summaries(args.corrections, status="pending"))
        raise DigitnetError(f"no accepted corrections in {args.corrections} ({waiting} pending); "
                            "review them with 'digitnet corrections review', or pass --include-pending")
    out = args.out or runs.new_run_dir("finetune")
    if out.exists() and any(out.iterdir()):
        raise DigitnetError(f"{out}: exists and is not empty; choose a new --out")
    show = console()
    outcome = finetune(start, data, config, out, data_dir=args.data_dir,
                       progress=lambda text: show.print(text + "…"))
    report(outcome, start)
    if not outcome.accepted:
        print(f"digitnet: not written: {outcome.refused}; review the corrections, or try fewer "
              "--steps or a lower --lr", file=sys.stderr)
        return 1
    show.print(f"run saved in {out}")
    if args.swap:
        served.write(args.corrections.parent, out)
        show.print(f"named in {args.corrections.parent / served.FILE_NAME}: servers of that store "
                   "serve it within a second")
    else:
        show.print(f"serve it: digitnet serve --run {out}  (or pass --swap next time)")
    return 0
