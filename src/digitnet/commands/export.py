"""``digitnet export``: write the run's model as ONNX and check it against PyTorch."""

from __future__ import annotations

from digitnet.commands.common import add_run_option, console
from digitnet.datasets import load
from digitnet.inference.export import FORMATS, export_onnx
from digitnet.training import runs


def register(sub) -> None:
    p = sub.add_parser("export", help="export a trained model to ONNX (checked against PyTorch)")
    add_run_option(p)
    p.add_argument("--format", choices=FORMATS, default="onnx", help="file format (default: onnx)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the IDX files of the run's dataset (for the check on test images)")
    p.set_defaults(run=run)


def run(args) -> int:
    run_dir = runs.resolve_run_dir(args.run_dir)
    config, _ = runs.read_config(run_dir)
    ds = load(config.dataset, args.data_dir)  # before exporting: no export without its check
    path, report = export_onnx(run_dir, ds.x_test, ds.y_test)
    out = console()
    # soft_wrap: each result stays one line however narrow the terminal (or a pipe) is
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): input float32 (batch, 1, 28, 28) "
              f"in [0, 1], output probabilities (batch, {len(config.classes)})", soft_wrap=True)
    out.print(f"checked against PyTorch on {report.images:,} {ds.name} test images: same class for "
              f"{report.agreement:.1%}, max probability difference {report.max_abs_diff:.1e}, "
              f"accuracy {report.accuracy:.2%}", soft_wrap=True)
    return 0
