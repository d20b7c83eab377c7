"""README.md: every Python block runs as printed, the page stays short, and its links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from digitnet.datasets import load
from digitnet.errors import DigitnetError

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


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    try:
        load("mnist")
    except DigitnetError as e:
        pytest.skip(f"MNIST files not available: {e}")
    monkeypatch.chdir(tmp_path)
    code = compile(python_blocks()[index], f"README.md python block {index + 1}", "exec")
    threads = torch.get_num_threads()  # the block may set them (TrainConfig(threads=1))
    try:
        exec(code, {"__name__": "__readme__"})
    finally:
        torch.set_num_threads(threads)


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
