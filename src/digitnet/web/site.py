"""Reading digits in the browser, with no server: the files a page needs for it.

A *reader folder* holds ``model.json`` (the classes, the verdict's thresholds, what to load),
``model.onnx`` (the run's model, checked against PyTorch), ``first-layer.onnx`` (its first layer,
for "What the network sees") and the browser runtime (``browser_runtime``). The page's
``reader/device.js`` opens such a folder. ``export_site``
writes one together with the page, a static site for any host (``digitnet export --web DIR``);
``on_device`` finds the files for the served page's "read on this device" switch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitnet import atomic, runs
from digitnet.errors import DigitnetError
from digitnet.inference import bundled, explain, export, onnx_runtime
from digitnet.runs.run import Run
from digitnet.vision import imaging
from digitnet.web import browser_runtime

STATIC = Path(__file__).parent / "static"
MODEL_INFO = "model.json"
FORMAT = "digitnet-reader"
# the page of the static site: file in static/ -> its name in the site
PAGE = {"site.html": "index.html", "site.js": "site.js", "style.css": "style.css",
        "favicon.svg": "favicon.svg", "reader/imaging.js": "reader/imaging.js",
        "reader/verdict.js": "reader/verdict.js", "reader/device.js": "reader/device.js",
        "reader/ink.js": "reader/ink.js", "reader/answer.js": "reader/answer.js",
        "reader/explain.js": "reader/explain.js", "reader/sees.js": "reader/sees.js"}


def explain_info(first_layer: dict[str, Any] | None) -> dict[str, Any]:
    """What the page needs to show what the network sees on the device: occlusion's settings as
    ``explain`` has them (so the device computes what /api/explain does) and the first layer's
    file from its export record (None: the page shows the pixels' push without the maps)."""
    layer = None if first_layer is None else {
        "model": first_layer["file"], "input": first_layer["input"], "output": first_layer["output"],
        "layer": first_layer["layer"], "kinds": first_layer["kinds"], "channels": first_layer["channels"]}
    return {**explain.method_dict("occlusion"), "maps": explain.MAPS, "first_layer": layer}


def reader_info(run: Run, first_layer: dict[str, Any] | None = None) -> dict[str, Any]:
    """model.json: what the page needs to read with the run's model, as the server does, and to
    show what it sees (``first_layer``: the record of the first layer's export)."""
    return {
        "format": FORMAT,
        **run.describe(),  # what /api/model says of the model too
        # the algorithm from pixels to 28x28 the server uses: reader/imaging.js refuses another
        # (the calibration record names the one the verdict was fitted on)
        "preprocess": imaging.PREPROCESS_VERSION,
        # the thresholds of the verdict (calibration.from_record reads the same record)
        "calibration": run.metrics.get("calibration"),
        "model": runs.ONNX_FILE,
        "input": onnx_runtime.INPUT_NAME,
        "output": onnx_runtime.OUTPUT_NAME,
        "runtime": {"name": browser_runtime.PACKAGE, "version": browser_runtime.VERSION,
                    "module": browser_runtime.MODULE},
        "explain": explain_info(first_layer),
    }


@dataclass(frozen=True)
class OnDevice:
    """The served page's reader folder: its files by name, or why there is none: ``reason``
    in one plain sentence for every visitor (no path of the server's), ``detail`` with the
    paths and the fix for its operator (the server's log)."""

    files: dict[str, Path]
    info: dict[str, Any] | None
    reason: str = ""
    detail: str = ""


NO_RUNTIME = "This server cannot offer reading on this device: it has no copy of the browser runtime."
NO_EXPORT = "This server cannot offer reading on this device: its model has no checked ONNX export."


def on_device(run: Run) -> OnDevice:
    """The run's checked, current model.onnx (the bundled reader's too, when the package ships
    one that checks out) and the cached runtime, checked by SHA-256, when both are there."""
    runtime = browser_runtime.cached()
    if runtime is None:
        return OnDevice({}, None, NO_RUNTIME, browser_runtime.missing())
    try:
        model, _ = run.checked_export()
        first = run.checked_first_layer()  # None for an export made before it
        info = reader_info(run, first and first[1])
    except DigitnetError as e:
        if run.path.resolve() == bundled.READER_DIR:  # the package's files stay as shipped
            return OnDevice({}, None, NO_EXPORT, f"the bundled reader has no checked model.onnx ({e}); "
                                                 "serve a run exported with 'digitnet export --run DIR'")
        return OnDevice({}, None, NO_EXPORT, f"no checked ONNX export: {e}")
    files = {name: runtime / name for name in browser_runtime.FILES}
    if first is not None:
        files[runs.FIRST_LAYER_FILE] = first[0]
    return OnDevice({**files, runs.ONNX_FILE: model}, info)


@dataclass
class Site:
    """What ``export_site`` wrote."""

    path: Path
    bytes: int
    files: int
    check: dict[str, Any]  # the ONNX check (export.ParityReport.to_dict())
    reused: bool  # the run's own checked model.onnx was copied rather than exported again


def _is_site(path: Path) -> bool:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return json.loads((path / MODEL_INFO).read_text()).get("format") == FORMAT
    return False


def _first_layer(run: Run, dest: Path, images: np.ndarray) -> dict[str, Any]:
    """The run's first layer as ONNX in ``dest``: its own first-layer.onnx when it is checked and
    current, else exported and checked here. Returns its record."""
    found = run.checked_first_layer()
    if found is None:
        return export.write_first_layer(run, dest, images)
    dest.write_bytes(run.read(found[0].name))  # the bytes its check hashed
    return found[1]


def _model(run: Run, dest: Path, images: np.ndarray, labels: np.ndarray) -> tuple[dict, bool]:
    """The run's model as ONNX in ``dest``: its own model.onnx when that passed the check and is
    current, else exported and checked here. Returns the check and whether the file was copied."""
    try:
        path, record = run.checked_export()
    except DigitnetError:
        return export.write_checked(run, dest, images, labels).to_dict(), False
    dest.write_bytes(run.read(path.name))  # the bytes its check hashed
    return record["check"], True


def export_site(run: Run, dest: Path, images: np.ndarray, labels: np.ndarray) -> Site:
    """Write the static site of ``run``'s model into ``dest``: built in a temporary folder beside
    it, then renamed into place (replacing an earlier site there, never any other folder)."""
    dest = Path(dest)
    if dest.exists() and not (dest.is_dir() and (_is_site(dest) or not any(dest.iterdir()))):
        raise DigitnetError(f"{dest}: exists and is not a site written by digitnet; choose a new "
                            "or empty folder")
    runtime = browser_runtime.ensure()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    umask = os.umask(0)
    os.umask(umask)
    try:
        check, reused = _model(run, tmp / runs.ONNX_FILE, images, labels)
        first_layer = _first_layer(run, tmp / runs.FIRST_LAYER_FILE, images)
        atomic.write_json(tmp / MODEL_INFO, reader_info(run, first_layer))
        for source, name in PAGE.items():
            (tmp / name).parent.mkdir(exist_ok=True)
            shutil.copyfile(STATIC / source, tmp / name)
        for name in browser_runtime.FILES:
            shutil.copyfile(runtime / name, tmp / name)
        for path in (tmp, *(p for p in tmp.rglob("*") if p.is_dir())):
            path.chmod(0o777 & ~umask)  # a web server must be able to read the site
        if dest.exists():
            old = dest.rename(Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old.")) / "site")
            tmp.rename(dest)
            shutil.rmtree(old.parent)
        else:
            tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = [p for p in dest.rglob("*") if p.is_file()]
    return Site(dest, sum(p.stat().st_size for p in files), len(files), check, reused)
