"""``digitnet export``: write the run's model as ONNX and check it against PyTorch, or a static
site that reads digits in the browser (``--web DIR``)."""

from __future__ import annotations

from pathlib import Path

from digitnet import runs
from digitnet.commands.common import add_run_option, console
from digitnet.datasets import load
from digitnet.inference import bundled
from digitnet.inference.export import FORMATS, export_onnx
from digitnet.runs.run import Run


def register(sub) -> None:
    p = sub.add_parser("export", help="export a trained model to ONNX (checked against PyTorch), "
                                      "or a static site that reads digits in the browser")
    add_run_option(p, "; with --web: the reader bundled with digitnet, 'latest' for the newest run")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="file format (default: onnx)")
    p.add_argument("--web", type=Path, metavar="DIR",
                   help="write a static site into DIR instead: the page, the model as ONNX and the "
                        "browser runtime (fetched once through npm), for any static host")
    p.add_argument("--data-dir", default=None,
                   help="folder with the IDX files of the run's dataset (for the check on test images)")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.web is not None:
        return run_web(args)
    run = Run.open(runs.resolve_run_dir(args.run_dir))
    ds = load(run.config.dataset, args.data_dir)  # before exporting: no export without its check
    exported, report = export_onnx(run, ds.x_test, ds.y_test, calibration=ds.x_train)
    run_dir, path = run.path, run.path / runs.ONNX_FILE
    out = console()
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): input float32 (batch, 1, 28, 28) "
              f"in [0, 1], output probabilities (batch, {len(run.config.classes)})")
    out.print(f"checked against PyTorch on {report.images:,} {ds.name} test images: same class for "
              f"{report.agreement:.1%}, max probability difference {report.max_abs_diff:.1e}, "
              f"accuracy {report.accuracy:.2%}")
    export = exported.config_file["export"]
    int8 = export["int8"]
    agrees = (f"the same class as model.onnx for {int8['check']['agreement']:.1%} of the test "
              f"images, max probability difference {int8['check']['max_abs_diff']:.2f}")
    if int8["check"]["passed"]:
        out.print(f"wrote {run_dir / int8['file']}: int8 (--backend onnx-int8), ranges from "
                  f"{int8['calibration_images']:,} training images; {agrees}")
    else:
        out.print(f"no {int8['file']}: its answers are too far from the float model's ({agrees}; "
                  f"at least {int8['check']['required']:.1%} needed)")
    first = export["first_layer"]
    out.print(f"wrote {run_dir / first['file']}: the first layer ({first['layer']}) for what the "
              f"network sees on the page, checked on {first['check']['images']} images, max "
              f"difference {first['check']['max_abs_diff']:.1e}")
    return 0


def run_web(args) -> int:
    from digitnet.web import browser_runtime
    from digitnet.web.site import export_site

    run = Run.open(bundled.model_dir(args.run_dir))
    ds = load(run.config.dataset, args.data_dir)  # before exporting: no export without its check
    site = export_site(run, args.web, ds.x_test, ds.y_test)
    check = site.check
    how = "model.onnx (the run's own)" if site.reused else "model.onnx"
    out = console()
    out.print(f"wrote {site.path}: a static site reading digits with {run.path.name} in the browser "
              f"({site.files} files, {site.bytes / 1e6:.1f} MB, {browser_runtime.NAME})")
    out.print(f"{how} checked against PyTorch on {check['images']:,} {ds.name} test images: same class "
              f"for {check['agreement']:.1%}, max probability difference {check['max_abs_diff']:.1e}")
    out.print(f"try it: python -m http.server -d {site.path}, then open http://localhost:8000/")
    return 0
