"""``digitnet bench``: training and inference speed against the plain PyTorch reference loop."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from digitnet import atomic
from digitnet.benchmarks.runner import (
    BenchOptions,
    Report,
    find_reference,
    machine_name,
    run_bench,
)
from digitnet.commands.common import console
from digitnet.datasets import load
from digitnet.errors import DigitnetError
from digitnet.training.recipes import RECIPES


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure training and inference speed against the reference")
    p.add_argument("--quick", action="store_true",
                   help="tiny subsets and one repeat: checks that everything runs (a minute on 2 cores)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--reference", help="the plain PyTorch loop to compare with (default "
                                       "$DIGITNET_REFERENCE or ../shared/bench/reference_torch.py)")
    p.add_argument("--repeats", type=int, help="runs of each measurement, medians reported (3)")
    p.add_argument("--limit", type=int, help="training images for the epoch comparison (all)")
    p.add_argument("--recipe-limit", type=int, help="training images for the recipe runs (all)")
    p.add_argument("--recipes", help=f"comma-separated recipes to time (default: "
                                     f"{','.join(r for r in RECIPES if r != 'tutorial')})")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    p.set_defaults(run=run)


def options(args) -> BenchOptions:
    changes = {"reference": find_reference(args.reference), "data_dir": args.data_dir}
    if args.repeats is not None:
        if args.repeats < 1:
            raise DigitnetError(f"--repeats must be at least 1, got {args.repeats}")
        changes["repeats"] = args.repeats
    if args.limit is not None:
        changes["limit"] = args.limit
    if args.recipe_limit is not None:
        changes["recipe_limit"] = args.recipe_limit
    if args.recipes is not None:
        changes["recipes"] = tuple(r for r in args.recipes.split(",") if r)
    return BenchOptions.quick(**changes) if args.quick else BenchOptions(**changes)


def ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def epoch_table(report: Report) -> Table:
    epoch = Table(title=f"One epoch ({report.epoch['images']} images), medians")
    for col in ("loop", "seconds", "x reference", "test accuracy", "peak MB", "threads"):
        epoch.add_column(col)
    for name in ("reference", "digitnet"):
        row = report.epoch[name]
        if "skipped" in row:
            epoch.add_row(name, "skipped", "", row["skipped"], "", "")
            continue
        relative = 1.0 if name == "reference" else report.epoch.get("ratio")
        epoch.add_row(name, f"{row['median_seconds']:.2f}", ratio(relative),
                      f"{row['median_accuracy']:.4f}", f"{row['peak_rss_mb']:.0f}",
                      str(row["threads"]))
    if "ratio" in report.epoch:
        epoch.caption = (f"accuracy difference "
                         f"{report.epoch['accuracy_difference'] * 100:+.2f} points")
    return epoch


def tables(report: Report) -> list[Table]:
    recipes = Table(title="Recipes, medians")
    for col in ("recipe", "epochs", "seconds", "x reference epoch", "test accuracy", "goal"):
        recipes.add_column(col)
    for name, row in report.recipes.items():
        recipes.add_row(name, str(row["epochs"]), f"{row['median_seconds']:.2f}",
                        ratio(row.get("ratio_to_reference_epoch")), f"{row['median_accuracy']:.4f}",
                        f"{row['goal']:.3f} {'reached' if row['reached'] else 'NOT reached'}")
    inference = Table(title="Inference")
    for col in ("backend", "precision", "images/s", "x torch fp32", "p50 ms", "p99 ms"):
        inference.add_column(col)
    for row in report.inference:
        if "missing" in row:
            inference.add_row(row["backend"], row["precision"], "not measured: no checked int8 copy")
            continue
        inference.add_row(row["backend"], row["precision"], f"{row['images_per_second']:,.0f}",
                          ratio(row["throughput_ratio_to_torch_fp32"]),
                          f"{row['latency_ms_p50']:.2f}", f"{row['latency_ms_p99']:.2f}")
    # no recipes timed (--recipes ""): no empty table
    return [epoch_table(report)] + ([recipes] if report.recipes else []) + [inference]


def run(args) -> int:
    opts = options(args)
    if args.json is not None:
        atomic.check_writable(args.json)  # before an hour of measuring, not after
    out = console()
    if opts.reference is None:
        out.print("reference loop not found: skipping it (pass --reference PATH)")
    test = load("mnist", args.data_dir)
    report = run_bench(opts, test.x_test, test.y_test, test.x_train,
                       progress=lambda msg: out.print(f"[dim]measuring {msg} ...[/dim]"))
    out.print(f"Measured on {machine_name(report.machine)}; every training run interleaved "
              "with the reference's, round by round")
    for table in tables(report):
        out.print(table)
    if args.json is not None:
        atomic.write_json(args.json, report.to_dict())
        out.print(f"results written to {args.json}")
    return 0
