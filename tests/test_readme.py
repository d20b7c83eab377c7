"""README.md: every Python block runs and prints what the page says, the figures it shows are the
code's, the page stays short, and its links resolve."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from digitnet.models import TutorialCNN, count_parameters

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 250

FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def python_blocks() -> list[str]:
    return FENCE.findall(README.read_text(encoding="utf-8"))


def relative_links(page: Path = README) -> list[str]:
    links = LINK.findall(page.read_text(encoding="utf-8"))
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:|#", link)]


def test_readme_has_python_to_run():
    assert python_blocks(), "README.md has no ```python block"


def run_block(block: str, name: str, folder: Path) -> tuple[dict, list[str]]:
    """Run a README python block as printed, in ``folder``: (its globals, its printed lines)."""
    namespace, out, cwd = {"__name__": "__readme__"}, io.StringIO(), os.getcwd()
    threads = torch.get_num_threads()  # the block may set them (TrainConfig(threads=1))
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block, name, "exec"), namespace)
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return namespace, out.getvalue().splitlines()


@pytest.fixture(scope="module")
def ran(mnist, tmp_path_factory) -> list[tuple[dict, list[str]]]:
    """Every python block of the README run once, in order: (globals, printed lines) of each."""
    return [run_block(block, f"README.md python block {i + 1}", tmp_path_factory.mktemp("readme"))
            for i, block in enumerate(python_blocks())]


def annotated_outputs(block: str) -> list[str]:
    """What the README says each print shows: the comment after ``print(...)``, in order."""
    return [m.group(1) for m in re.finditer(r"^\s*print\(.*\)\s+# (.+)$", block, re.MULTILINE)]


def test_readme_python_blocks_print_what_they_say(ran):
    for block, (_, printed) in zip(python_blocks(), ran, strict=True):
        said = annotated_outputs(block)
        assert printed[:len(said)] == said  # the annotated prints come first


def test_readme_end_to_end_figures_are_the_codes(ran):
    """The end-to-end block's printed accuracy and loss are what its objects hold, recomputed
    here without digitnet's evaluate, and plausible for 800 training images and one epoch."""
    ns, printed = next(r for b, r in zip(python_blocks(), ran, strict=True) if "fit(config" in b)
    assert printed[0] == str(count_parameters(TutorialCNN())) == "600810"
    metrics, model, x_test, y_test = ns["metrics"], ns["model"], ns["x_test"], ns["y_test"]
    assert printed[1] == f"test accuracy {metrics['test_accuracy']:.1%}"
    first = re.fullmatch(r"first 1,000 test images: accuracy (\d+\.\d)%, loss (\d\.\d{3})", printed[2])
    assert first, printed[2]
    with torch.no_grad():
        logits = model(torch.from_numpy(x_test[:1000]))
    labels = torch.from_numpy(y_test[:1000]).argmax(1)
    assert float(first.group(1)) == pytest.approx(100 * (logits.argmax(1) == labels).float().mean().item(),
                                                  abs=0.05)
    assert float(first.group(2)) == pytest.approx(F.cross_entropy(logits, labels).item(), abs=5e-4)
    # One epoch on 800 images: far above chance (10%), short of a full run (98%).
    assert 0.6 < metrics["test_accuracy"] < 0.97
    # The loaded model is the trained one: its accuracy on the first 1,000 test images is near
    # the run's on all 10,000 (measured 71.8% and 75.9%; a fresh network would score about 10%).
    assert abs(float(first.group(1)) / 100 - metrics["test_accuracy"]) < 0.08


def test_readme_summary_table_is_the_commands(cli):
    """The ``digitnet summary`` listing in the README shows what the command prints."""
    text = README.read_text(encoding="utf-8")
    listing = text[text.index("$ digitnet summary"):]
    listing = listing[:listing.index("```")]
    row = r"(\w+ \(\w+\))\s+(\(None(?:, \d+)+\))\s+([\d,]+)"
    shown = re.findall(r"^ " + row, listing, re.MULTILINE)
    code, out, _ = cli("summary")
    assert code == 0
    printed = re.findall(r"│ " + row.replace(r")\s+(", r")\s+│ ("), out)
    assert shown and shown == printed
    total = re.search(r"Total params: ([\d,]+)", listing).group(1)
    assert f"Total params: {total}" in out
    assert f"`model = TutorialCNN()` ({total} parameters)" in text


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; at most {MAX_LINES}"


def test_readme_links_point_to_files():
    links = relative_links()
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_every_docs_page_is_linked_from_readme():
    linked = {(ROOT / link.split("#")[0]).resolve() for link in relative_links()}
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_docs_links_point_to_files(page):
    missing = [link for link in relative_links(page)
               if not (page.parent / link.split("#")[0]).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"
