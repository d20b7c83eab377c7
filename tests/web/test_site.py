"""The static site (``digitnet export --web``), the browser runtime's fetch and cache, and the
served page's reader folder (/ondevice/), without a browser."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest
from fastapi.testclient import TestClient

from digitnet import npm, runs
from digitnet.errors import DigitnetError
from digitnet.runs.run import Run
from digitnet.web import browser_runtime, site
from digitnet.web.app import Settings, create_app

MAX_SITE_BYTES = 16_000_000


@pytest.fixture
def runtime():
    if browser_runtime.cached() is None:
        pytest.skip(browser_runtime.missing())
    return browser_runtime.cached()


def fake_npm(tmp_path, monkeypatch, script: str) -> None:
    """An ``npm`` first on PATH running ``script`` (sh; $4 is --pack-destination's folder)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_export_web_writes_a_site_with_the_runs_checked_model(cli, runtime, exported_run, tmp_path,
                                                              count_reads):
    run_dir = exported_run[0]
    dest = tmp_path / "site"
    counts = count_reads(run_dir)
    code, out, err = cli("export", "--web", dest, "--run", run_dir)
    assert code == 0, err
    # the site's ONNX files are the bytes their checks hashed: each file of the run read once
    assert dict(counts) == {name: 1 for name in (runs.CONFIG_FILE, runs.MODEL_FILE, runs.METRICS_FILE,
                                                 runs.ONNX_FILE, runs.FIRST_LAYER_FILE)}
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"wrote {dest}: a static site") and "onnxruntime-web 1.30.0" in lines[0]
    assert "checked against PyTorch on 1,000 mnist test images: same class for 100.0%" in lines[1]
    names = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert {"index.html", "site.js", "style.css", "model.json", "model.onnx", "first-layer.onnx",
            "reader/imaging.js", "reader/device.js", "reader/explain.js", "reader/sees.js",
            *browser_runtime.FILES} <= names
    assert (dest / "model.onnx").read_bytes() == (run_dir / "model.onnx").read_bytes()
    assert (dest / "first-layer.onnx").read_bytes() == (run_dir / "first-layer.onnx").read_bytes()
    info = json.loads((dest / "model.json").read_text())
    assert info["classes"] == [str(d) for d in range(10)] and info["calibration"] is None
    assert info["explain"]["first_layer"]["model"] == "first-layer.onnx"
    assert info["runtime"] == {"name": "onnxruntime-web", "version": "1.30.0", "module": "ort.wasm.min.mjs"}
    page_and_runtime = sum(p.stat().st_size for p in dest.rglob("*") if p.name != "model.onnx")
    assert page_and_runtime < MAX_SITE_BYTES - 1_000_000  # room for a reader under 1 MB
    assert "https://" not in (dest / "index.html").read_text()  # nothing from elsewhere

    (dest / "stale.txt").write_text("from the last export")
    code, _, err = cli("export", "--web", dest, "--run", run_dir)  # a site is replaced whole
    assert code == 0, err
    assert not (dest / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no temporary folder left


def test_export_web_refuses_a_folder_that_is_not_a_site(cli, runtime, exported_run, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, out, err = cli("export", "--web", tmp_path, "--run", exported_run[0])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "is not a site written by digitnet" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_without_npm_or_registry_the_export_says_so_in_one_line(cli, trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv(browser_runtime.ENV, str(tmp_path / "runtime"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm there
    code, _, err = cli("export", "--web", tmp_path / "site", "--run", trained_run)
    assert code == 2 and err.count("\n") == 1
    assert "npm is not installed" in err and "install Node.js" in err
    assert not (tmp_path / "site").exists()

    fake_npm(tmp_path, monkeypatch, 'echo "npm error code ENOTFOUND" >&2\nexit 1')
    with pytest.raises(DigitnetError, match="could not reach its registry.*ENOTFOUND.*registry setting"):
        browser_runtime.ensure()


def test_the_runtime_is_fetched_checked_and_kept(runtime, tmp_path, monkeypatch):
    tarball = tmp_path / "ort.tgz"
    with tarfile.open(tarball, "w") as tar:
        for name in browser_runtime.FILES:
            tar.add(runtime / name, f"package/dist/{name}")
    fake_npm(tmp_path, monkeypatch, f'cp "{tarball}" "$4/"')
    monkeypatch.setenv(browser_runtime.ENV, str(tmp_path / "cache"))
    assert browser_runtime.cached() is None
    assert browser_runtime.ensure() == tmp_path / "cache" == browser_runtime.cached()

    # a tarball whose files are not the pinned ones is refused, and nothing lands
    with tarfile.open(tarball, "w") as tar:
        for name in browser_runtime.FILES:
            data = b"not the runtime"
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setenv(browser_runtime.ENV, str(tmp_path / "other"))
    with pytest.raises(DigitnetError, match="checksum differs"):
        browser_runtime.ensure()
    assert not (tmp_path / "other").exists()
    with pytest.raises(DigitnetError, match="has no dist/"):
        npm.pack_files("onnxruntime-web@1.30.0", ["dist/missing.js"])


def test_the_served_reader_folder(runtime, exported_run):
    run_dir = exported_run[0]
    with TestClient(create_app(Settings(run_dir=run_dir))) as client:
        page = client.get("/")
        assert "'wasm-unsafe-eval'" in page.headers["content-security-policy"]
        info = client.get("/ondevice/model.json").json()
        assert info["run"] == run_dir.name and info["model"] == "model.onnx"
        assert client.get("/ondevice/model.onnx").content == (run_dir / "model.onnx").read_bytes()
        # what the network sees: occlusion's settings as explain has them, and the first layer
        layer = {"model": "first-layer.onnx", "input": "input", "output": "feature_maps",
                 "layer": "conv1", "kinds": ["Conv2d"], "channels": 32}
        assert info["explain"] == {"name": "occlusion", "score": "log-odds", "window": 4, "stride": 2,
                                   "maps": 16, "first_layer": layer}
        assert client.get("/ondevice/first-layer.onnx").content == (run_dir / "first-layer.onnx").read_bytes()
        module = client.get("/ondevice/ort.wasm.min.mjs")
        assert module.status_code == 200 and "javascript" in module.headers["content-type"]
        assert client.get("/ondevice/config.json").status_code == 404


def test_without_a_checked_model_or_the_runtime_on_device_says_why(trained_run, tmp_path, monkeypatch):
    """One plain sentence for the visitor; the paths and the fix only for the operator."""
    if browser_runtime.cached() is not None:
        with TestClient(create_app(Settings(run_dir=trained_run))) as client:
            r = client.get("/ondevice/model.json")
        assert r.status_code == 404 and r.json()["detail"] == site.NO_EXPORT
        assert "digitnet export --run" in site.on_device(Run.open(trained_run)).detail
    monkeypatch.setenv(browser_runtime.ENV, str(tmp_path))
    with TestClient(create_app(Settings(run_dir=trained_run))) as client:
        r = client.get("/ondevice/model.onnx")
    assert r.status_code == 404 and r.json()["detail"] == site.NO_RUNTIME
    assert "python -m digitnet.web.browser_runtime" in site.on_device(Run.open(trained_run)).detail


def test_an_export_made_before_first_layers_still_reads_and_a_site_gets_one(runtime, exported_run, mnist,
                                                                            tmp_path):
    """A run whose export has no first-layer.onnx: the served page reads on the device all the
    same (model.json says there is no first layer), and its static site gets one, checked."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir)
    (run_dir / "first-layer.onnx").unlink()
    _, config = runs.read_config(run_dir)
    runs.update_config(run_dir, export={**config["export"], "first_layer": None})
    found = site.on_device(Run.open(run_dir))
    assert found.info["explain"]["first_layer"] is None and "first-layer.onnx" not in found.files
    assert "model.onnx" in found.files

    written = site.export_site(Run.open(run_dir), tmp_path / "site", mnist.x_test[:50], mnist.y_test[:50])
    info = json.loads((written.path / "model.json").read_text())
    assert info["explain"]["first_layer"]["layer"] == "conv1"
    assert (written.path / "first-layer.onnx").is_file() and not (run_dir / "first-layer.onnx").exists()
