"""examples/tutorial.ipynb runs top to bottom (on a subset), and what it stores is a full run."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "tutorial.ipynb"
SUBSET = 2_000  # training images in the test run: about a second of training
TEST_SUBSET = 1_000  # test images: measuring all 10,000 three times (one thread) took most of the run
# Run right after the parameters cell: every MNIST load in the kernel keeps the first TEST_SUBSET
# test images (the notebook's figures are not the point here; the stored outputs are a full run).
SHORT_TEST_SET = f"""
import dataclasses
from digitnet.datasets import sources
_load_folder = sources.load_folder
sources.load_folder = lambda *a, **k: (lambda ds: dataclasses.replace(
    ds, x_test=ds.x_test[:{TEST_SUBSET}], y_test=ds.y_test[:{TEST_SUBSET}]))(_load_folder(*a, **k))
"""


def outputs_text(cell) -> str:
    """The text a code cell printed or displayed."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def cell_with(nb, text: str):
    return next(c for c in nb.cells if c.cell_type == "code" and text in c.source)


@pytest.mark.slow  # a Jupyter kernel, torch's import, a short training run: 15-30 s
def test_the_notebook_runs_top_to_bottom_on_a_subset(mnist, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Override the parameters cell the way papermill does: a cell right after it.
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(
        f"limit = {SUBSET}\nrun_dir = {str(tmp_path / 'run')!r}\n{SHORT_TEST_SET}"))
    started = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.perf_counter() - started
    print(f"the notebook ran in {seconds:.1f} s on {SUBSET:,} training images")

    trained = outputs_text(cell_with(nb, "metrics = fit("))
    assert f"trained on {SUBSET:,} images" in trained
    steps = -(-SUBSET // 32)
    assert re.search(rf"epoch 1/1 .*━.* {steps}/{steps}", trained)  # the bar, at its end
    evaluated = outputs_text(cell_with(nb, "evaluate("))
    accuracy = float(re.search(r"test accuracy ([0-9.]+)%", evaluated).group(1))
    # 2,000 images, one epoch, read on the first 1,000 test images (harder than the rest):
    # 79.5-83.7% for seeds 0-3 in fp32 on an AVX2-only CPU, more in bf16; chance is 10%
    assert accuracy > 70
    assert f"({TEST_SUBSET}, 1, 28, 28)" in outputs_text(cell_with(nb, "X_test = scale("))
    assert "the reader says: 4 " in outputs_text(cell_with(nb, "predict_files"))
    images = sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for out in c.outputs)
    assert images == 9
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.jpg"))  # the drawn photo goes into the run, not the folder


def test_the_stored_outputs_are_a_full_run_and_small():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1))  # run once, top to bottom
    assert not any(out["output_type"] == "error" for c in code for out in c["outputs"])
    params = next(c for c in code if "parameters" in c["metadata"].get("tags", []))
    assert "limit = 0" in "".join(params["source"])
    trained = outputs_text(next(c for c in code if "metrics = fit(" in "".join(c["source"])))
    assert "trained on 60,000 images" in trained
    assert NOTEBOOK.stat().st_size < 1_000_000  # it reads well on GitHub and diffs stay small
