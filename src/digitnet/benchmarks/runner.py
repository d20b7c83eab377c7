"""Benchmarks measured in one invocation on one machine: training time against a reference loop,
each recipe's time to its accuracy goal, inference speed and peak memory.

Training runs in fresh subprocesses (``digitnet train`` and the plain PyTorch reference loop),
interleaved round by round, so all see the same machine state and each one's peak memory can be
read from its own resource usage. Every figure is the median of ``repeats`` runs, and each is
also given as a ratio to the reference measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitnet import runs
from digitnet.benchmarks import timing
from digitnet.datasets import get_spec
from digitnet.errors import DigitnetError
from digitnet.inference.export import export_onnx
from digitnet.inference.predictor import PRECISIONS, RUNTIMES, Predictor
from digitnet.runs.run import Run
from digitnet.training import devices
from digitnet.training.recipes import GOALS, RECIPES
from digitnet.training.recipes import resolve as resolve_recipe

REFERENCE_ENV = "DIGITNET_REFERENCE"
REFERENCE_DEFAULT = Path("../shared/bench/reference_torch.py")
# Precisions each runtime can run in; torch's bf16 is autocast, the ONNX model is fp32.
RUNTIME_PRECISIONS: dict[str, tuple[str, ...]] = {"torch": PRECISIONS, "onnx": ("fp32",),
                                                  "onnx-int8": ("int8",)}


@dataclass
class BenchOptions:
    repeats: int = 3  # runs of each measurement; medians are reported
    limit: int = 0  # training images for the epoch comparison; 0 = all 60,000
    recipe_limit: int = 0  # training images for the recipe runs; 0 = all
    recipe_epochs: int = 0  # override each recipe's epochs; 0 = the recipe's own
    recipes: tuple[str, ...] = tuple(r for r in RECIPES if r != "tutorial")
    reference: Path | None = None  # the reference loop script; None = not run
    data_dir: str | None = None
    batch: int = 1000  # images per call for the throughput figure
    latency_calls: int = 300  # single-image calls behind each latency percentile

    @classmethod
    def quick(cls, **changes: Any) -> BenchOptions:
        """Tiny subsets and one repeat: checks the whole pipeline in seconds, measures nothing.
        Batches of 100 for throughput: where bf16 is emulated (AVX2), two batches of 1,000
        took 10 s on one thread."""
        base = {"repeats": 1, "limit": 1000, "recipe_limit": 1000, "recipe_epochs": 1,
                "batch": 100, "latency_calls": 20}
        return cls(**{**base, **changes})


@dataclass
class Process:
    result: dict[str, Any]  # the JSON the process printed or saved
    peak_rss_mb: float  # its maximum resident set size
    wall_seconds: float


@dataclass
class Report:
    machine: dict[str, Any]
    options: dict[str, Any]
    epoch: dict[str, Any] = field(default_factory=dict)
    recipes: dict[str, Any] = field(default_factory=dict)
    inference: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_reference(path: str | Path | None) -> Path | None:
    """The reference script: ``path``, else $DIGITNET_REFERENCE, else ../shared/bench/...; None if absent."""
    candidate = Path(path or os.environ.get(REFERENCE_ENV) or REFERENCE_DEFAULT)
    if path is not None and not candidate.is_file():
        raise DigitnetError(f"--reference {candidate} is not a file; give the reference loop's path")
    return candidate.resolve() if candidate.is_file() else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return [f for f in wanted if f in text.split()]


def machine_info() -> dict[str, Any]:
    versions = runs.environment()
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(),
            "native_bf16": devices.cpu_has_native_bf16(),
            "load_average_at_start": list(os.getloadavg()), "versions": versions}


def machine_name(machine: dict[str, Any]) -> str:
    """One line naming the machine a report was measured on, e.g. 'AMD EPYC, 2 cores,
    AVX512-BF16 (bf16 native), torch 2.13.0, load average 1.2 at start, 1.5 at end'."""
    flags = machine["cpu_flags"]
    isa = ("AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags
           else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2")
    native = "bf16 native" if machine["native_bf16"] else "no native bf16"
    load = f"load average {machine['load_average_at_start'][0]:.1f} at start"
    if "load_average_at_end" in machine:
        load += f", {machine['load_average_at_end'][0]:.1f} at end"
    return (f"{machine['cpu']}, {machine['cores']} cores, {isa} ({native}), "
            f"torch {machine['versions']['torch']}, {load}")


# Linux keeps a process's peak RSS across exec, so a child started straight from this (large)
# process would report at least our own size. This small launcher starts the command instead
# and writes the command's own peak RSS (KiB, from wait4) to the file named by argv[1].
LAUNCHER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_process(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """Run ``cmd``; return its stdout, its own peak RSS in MB and its wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "maxrss"
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", LAUNCHER, str(rss_file), *cmd],
                                  stdout=out, stderr=err, env=env, check=False)
            wall = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            if proc.returncode != 0:
                tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise DigitnetError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {tail[0]}")
            return out.read().decode(errors="replace"), int(rss_file.read_text()) / 1024, wall


def child_env(data_dir: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if data_dir:
        # the reference reads $DIGITNET_DATA/mnist, digitnet's --data-dir is that mnist folder
        env["DIGITNET_DATA"] = str(Path(data_dir).resolve().parent)
    return env


def reference_epoch(reference: Path, limit: int, data_dir: str | None) -> Process:
    cmd = [sys.executable, str(reference), "--epochs", "1"] + (["--limit", str(limit)] if limit else [])
    stdout, rss, wall = run_process(cmd, child_env(data_dir))
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise DigitnetError(f"{reference} printed no JSON line; is it the reference loop?")
    return Process(json.loads(lines[-1]), rss, wall)


def digitnet_train(run_dir: Path, data_dir: str | None, *args: str) -> Process:
    cmd = [sys.executable, "-m", "digitnet", "train", "--out", str(run_dir), *args]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    _, rss, wall = run_process(cmd, child_env(None))
    return Process(Run.open(run_dir).finished_metrics(), rss, wall)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarize(processes: list[Process]) -> dict[str, Any]:
    seconds = [p.result["train_seconds"] for p in processes]
    accuracy = [p.result["test_accuracy"] for p in processes]
    return {"train_seconds": seconds, "median_seconds": median(seconds),
            "test_accuracy": accuracy, "median_accuracy": median(accuracy),
            "peak_rss_mb": max(p.peak_rss_mb for p in processes),
            "threads": [p.result.get("threads") for p in processes]}


def recipe_args(opts: BenchOptions, name: str) -> list[str]:
    """``digitnet train`` arguments for the recipe ``name`` on ``opts.recipe_limit`` images (all
    when 0): a recipe's held-out digits and "not a digit" images, sized for its dataset's whole
    training set, shrink with the subset (the reader's 5,000 held out would leave none of a
    quick run's 1,000 to train on)."""
    args = ["--epochs", str(opts.recipe_epochs)] if opts.recipe_epochs else []
    if not opts.recipe_limit:
        return args
    config = resolve_recipe(name)
    whole = get_spec(config.dataset).shape[0]  # the training images the recipe is sized for
    args += ["--limit", str(opts.recipe_limit)]
    if config.validation:
        args += ["--validation", str(max(1, config.validation * opts.recipe_limit // whole))]
    if config.negatives:
        args += ["--negatives", str(max(1, config.negatives * opts.recipe_limit // whole))]
    return args


def train_rounds(opts: BenchOptions, work: Path) -> dict[str, list[Process]]:
    """Every training measurement, round by round: in each of ``opts.repeats`` rounds the
    reference loop, digitnet's default epoch and each recipe run once, one after the other
    (the order reversed every other round), so that all of them see the same machine: on
    shared cores the load moves over minutes, and a ratio of figures taken far apart would
    measure it."""
    runs: dict[str, list[Process]] = {"reference": [], "digitnet": [],
                                      **{name: [] for name in opts.recipes}}
    if opts.reference is None:
        del runs["reference"]
    limit = ["--limit", str(opts.limit)] if opts.limit else []
    for i in range(opts.repeats):
        for name in list(runs) if i % 2 == 0 else list(runs)[::-1]:
            if name == "reference":
                runs[name].append(reference_epoch(opts.reference, opts.limit, opts.data_dir))
            elif name == "digitnet":
                runs[name].append(digitnet_train(work / f"default-{i}", opts.data_dir, *limit))
            else:
                runs[name].append(digitnet_train(work / f"{name}-{i}", opts.data_dir, "--recipe",
                                                 name, *recipe_args(opts, name)))
    return runs


def bench_epoch(runs: dict[str, list[Process]]) -> dict[str, Any]:
    """(a) the reference's epoch against digitnet's default epoch, medians and their ratio."""
    ours = runs["digitnet"]
    result: dict[str, Any] = {"images": ours[0].result["train_images"], "digitnet": summarize(ours)}
    if "reference" in runs:
        ref = summarize(runs["reference"])
        result["reference"] = ref
        result["ratio"] = result["digitnet"]["median_seconds"] / ref["median_seconds"]
        result["accuracy_difference"] = result["digitnet"]["median_accuracy"] - ref["median_accuracy"]
    else:
        result["reference"] = {"skipped": "reference loop not found; pass --reference PATH or set "
                                          f"${REFERENCE_ENV}"}
    return result


def bench_recipes(runs: dict[str, list[Process]], recipes: tuple[str, ...],
                  reference_seconds: float | None) -> dict[str, Any]:
    """(b) each recipe's training time and test accuracy against its goal."""
    out: dict[str, Any] = {}
    for name in recipes:
        summary = summarize(runs[name])
        summary["goal"] = GOALS[name]
        summary["reached"] = summary["median_accuracy"] >= GOALS[name]
        summary["epochs"] = runs[name][0].result["epochs_run"]
        if reference_seconds:
            summary["ratio_to_reference_epoch"] = summary["median_seconds"] / reference_seconds
        out[name] = summary
    return out


def bench_inference(run_dir: Path, images: np.ndarray, labels: np.ndarray,
                    opts: BenchOptions, calibration: np.ndarray) -> list[dict[str, Any]]:
    """(c) images/s at batch ``opts.batch`` and single-image latency, per runtime and precision;
    each runtime's throughput also as a ratio to torch fp32, the plain PyTorch way. The onnx
    runtimes need the exported model and its int8 copy (ranges from ``calibration``, training
    images), both checked."""
    run, _ = export_onnx(run_dir, images, labels, calibration=calibration)  # one for every runtime
    rows = []
    for runtime in RUNTIMES:
        for precision in RUNTIME_PRECISIONS[runtime]:
            try:
                predictor = Predictor.from_run(run, backend=runtime,
                                               precision=precision if runtime == "torch" else "fp32")
            except DigitnetError as e:  # a model answering on a hair has no int8 copy
                if runtime != "onnx-int8":
                    raise
                rows.append({"backend": runtime, "precision": precision, "missing": str(e)})
                continue
            figures = timing.measure(predictor.probabilities, images, batch=opts.batch,
                                     calls=opts.latency_calls, repeats=opts.repeats)
            rows.append({
                "backend": runtime, "precision": precision, "batch": figures["batch"],
                "images_per_second": figures["images_per_s"],
                "latency_ms_p50": figures["p50_ms"], "latency_ms_p99": figures["p99_ms"],
            })
    plain = next(r["images_per_second"] for r in rows if r["backend"] == "torch"
                 and r["precision"] == "fp32")
    for row in rows:
        if "missing" not in row:
            row["throughput_ratio_to_torch_fp32"] = row["images_per_second"] / plain
    return rows


def run_bench(opts: BenchOptions, test_images: np.ndarray, test_labels: np.ndarray,
              train_images: np.ndarray, progress: Callable[[str], None] = lambda _msg: None) -> Report:
    """All four measurements; ``progress`` hears what is being measured. ``train_images``
    calibrate the int8 model's ranges."""
    unknown = [r for r in opts.recipes if r not in RECIPES]
    if unknown:
        raise DigitnetError(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
    report = Report(machine_info(), options)
    with tempfile.TemporaryDirectory(prefix="digitnet-bench-") as tmp:
        work = Path(tmp)
        progress(f"training, {opts.repeats} rounds of: the reference loop, digitnet's default "
                 f"epoch, {', '.join(opts.recipes) or 'no recipes'}")
        runs = train_rounds(opts, work)
        report.epoch = bench_epoch(runs)
        ref = report.epoch["reference"].get("median_seconds")
        report.recipes = bench_recipes(runs, opts.recipes, ref)
        progress("inference")
        report.inference = bench_inference(work / "default-0", test_images, test_labels, opts,
                                           train_images)
    report.machine["load_average_at_end"] = list(os.getloadavg())
    report.memory = {"train_peak_rss_mb": report.epoch["digitnet"]["peak_rss_mb"],
                     "recipes_peak_rss_mb": max((r["peak_rss_mb"] for r in report.recipes.values()),
                                                default=None)}
    return report
