"""The reader shipped inside the package, so ``predict``, ``read`` and ``serve`` work right after
install: a run directory's files (config, weights, metrics with the calibration, and the model
its first layer and its int8 copy as ONNX checked against them, for reading and explaining
on the device and for ``--backend onnx-int8``)
under ``digitnet/bundled/reader``.

``make reader`` trains the ``reader`` recipe and calls ``bundle`` on the run; ``bundle`` checks
the run before copying it in (it loads, it is calibrated, it has the "not a digit" class, its
ONNX export agrees with PyTorch on the test set, it fits the size limit), so a broken reader is
never shipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

from digitnet import atomic, runs
from digitnet.datasets import load
from digitnet.errors import DigitnetError
from digitnet.inference.export import export_onnx
from digitnet.runs.config import NOT_A_DIGIT_NAME
from digitnet.runs.run import Run

READER_DIR = Path(__file__).resolve().parent.parent / "bundled" / "reader"
FILES = (runs.CONFIG_FILE, runs.MODEL_FILE, runs.METRICS_FILE)  # what predict and serve need
# and what reading on the device needs besides: the model, and its first layer for the page's
# "What the network sees"; and the int8 copy for --backend onnx-int8
SHIPPED = (*FILES, runs.ONNX_FILE, runs.FIRST_LAYER_FILE, runs.INT8_FILE)
MAX_BYTES = 5 * 1024 * 1024  # the package stays small: the reader is about 1.5 MB with its ONNX
LATEST = "latest"  # ``--run latest``: the newest finished run under runs/


def reader_dir() -> Path:
    """The bundled reader's run directory; one line naming the fix when it is missing."""
    missing = [name for name in FILES if not (READER_DIR / name).is_file()]
    if missing:
        raise DigitnetError(f"the bundled reader is missing {', '.join(missing)} in {READER_DIR}; "
                            "rebuild it with 'make reader', or pass --run DIR")
    return READER_DIR


def model_dir(run_dir: str | Path | None) -> Path:
    """Which model answers: ``run_dir`` itself, the newest run for "latest", else the bundled reader."""
    if run_dir is None:
        return reader_dir()
    if str(run_dir) == LATEST:
        return runs.resolve_run_dir(None)
    return runs.check_run_dir(run_dir)


def check_reader(run: Run, files: tuple[str, ...] = FILES) -> None:
    """Refuse a run that is not a finished, calibrated reader whose ``files`` are small enough
    to ship."""
    run.model()  # weights readable and matching the config
    if NOT_A_DIGIT_NAME not in run.config.classes or not run.metrics.get("calibration"):
        raise DigitnetError(f"{run.path}: not a calibrated reader (no 'not a digit' class or no "
                            "calibration); train it with 'digitnet train --recipe reader'")
    missing = [name for name in files if not (run.path / name).is_file()]
    if missing:
        raise DigitnetError(f"{run.path}: no {', '.join(missing)}; a reader ships with all of "
                            f"{', '.join(files)}")
    size = sum((run.path / name).stat().st_size for name in files)
    if size > MAX_BYTES:
        raise DigitnetError(f"{run.path}: {size / 1e6:.1f} MB is over the bundled reader's limit of "
                            f"{MAX_BYTES / 1e6:.1f} MB; choose a smaller architecture")


def bundle(run_dir: str | Path, dest: Path = READER_DIR, data_dir: str | Path | None = None) -> Path:
    """Check the reader run, export it to ONNX in the run (checked against PyTorch on the
    dataset's test images, from ``data_dir``), then copy its files into ``dest``, each written
    atomically: the ONNX export's record in config.json names the weights it was made from."""
    run = Run.open(run_dir)
    check_reader(run)
    ds = load(run.config.dataset, data_dir)
    exported, _ = export_onnx(run, ds.x_test, ds.y_test, calibration=ds.x_train)
    check = exported.config_file["export"]["int8"]["check"]
    if not check["passed"]:
        raise DigitnetError(
            f"{run.path}: its int8 copy gave model.onnx's class on {check['agreement']:.1%} of "
            f"{check['images']} test images, under the {check['required']:.1%} a shipped reader "
            "needs for --backend onnx-int8; train it again or choose another architecture")
    check_reader(exported, SHIPPED)
    # The package records what the reader measured, not where it was trained.
    metrics = {k: v for k, v in exported.metrics.items() if k != "run_dir"}
    for name in (runs.MODEL_FILE, *SHIPPED[len(FILES):], runs.CONFIG_FILE):
        atomic.write_bytes(dest / name, exported.read(name))
    runs.write_metrics(dest, metrics)
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m digitnet.inference.bundled RUN_DIR``: what ``make reader`` runs after training."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m digitnet.inference.bundled",
                                     description="Check a reader run and make it the bundled reader.")
    parser.add_argument("run_dir", help="a run trained with 'digitnet train --recipe reader'")
    args = parser.parse_args(argv)
    try:
        dest = bundle(args.run_dir)
    except DigitnetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"bundled {args.run_dir} as the reader in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
