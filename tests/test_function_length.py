"""No function in the package or its benchmarks is longer than 60 lines: one that is does
several jobs, and each job reads better under its own name."""

from __future__ import annotations

import ast
from pathlib import Path

import digitnet

ROOT = Path(digitnet.__file__).resolve().parents[2]
LIMIT = 60  # lines, from ``def`` to the last line of the body, docstring included


def long_functions(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LIMIT:
                    found.append(f"{path.parent.name}/{path.name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_60_lines():
    files = sorted((ROOT / "src" / "digitnet").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    assert len(files) > 50
    assert long_functions(files) == []


def test_a_long_function_is_found(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "long.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    found = long_functions([tmp_path / "long.py"])
    assert len(found) == 1 and " long (61 lines)" in found[0]
