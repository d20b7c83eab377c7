"""The package's floors: a module imports from its own package or from a floor beneath it, never
from a floor above, nor from a package beside it on its floor (docs/architecture.md draws them).

Every import counts, wherever it is written: inside a function or under ``TYPE_CHECKING`` too,
since either is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import digitnet

PACKAGE = Path(digitnet.__file__).resolve().parent

# Bottom first. A name is a package or a module directly under digitnet/; "digitnet" is the
# package's own __init__ (its version).
FLOORS: list[tuple[str, set[str]]] = [
    # small shared modules: they may use each other
    ("foundation", {"digitnet", "errors", "atomic", "npm", "threads", "models", "preprocess",
                    "evaluate", "vision", "datasets"}),
    ("runs", {"runs"}),  # configs, run directories and the saved readers, opened once
    ("records", {"corrections", "plots"}),  # people's corrections; pictures of arrays
    ("training and inference", {"training", "inference"}),
    ("serving and measuring", {"web", "benchmarks"}),
    ("command line", {"commands", "cli", "__main__"}),  # the subcommands, their parser, python -m
]
SHARED = {"foundation", "command line"}  # floors whose packages may use each other


def unit_of(path: Path, root: Path) -> str:
    """The package or top-level module a file belongs to: ``runs`` for runs/calibration.py."""
    parts = path.relative_to(root).with_suffix("").parts
    return "digitnet" if parts == ("__init__",) else parts[0]


def imported_units(tree: ast.AST, root: Path) -> list[tuple[int, str]]:
    """(line, unit) of every digitnet import in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "digitnet" else [
                f"digitnet.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "digitnet":
                continue
            inner = parts[1] if len(parts) > 1 else "__init__"
            is_unit = (root / inner).is_dir() or (root / f"{inner}.py").is_file()
            found.append((node.lineno, inner if is_unit and inner != "__init__" else "digitnet"))
    return found


def upward_imports(root: Path, floors: list[tuple[str, set[str]]]) -> list[str]:
    """One line per import that reaches up a floor or sideways to another package on its floor,
    and per module that no floor names."""
    floor_of = {unit: i for i, (_, units) in enumerate(floors) for unit in units}
    problems = []
    for path in sorted(root.rglob("*.py")):
        here = unit_of(path, root)
        if here not in floor_of:
            problems.append(f"{path.relative_to(root)}: '{here}' is on no floor; add it to FLOORS "
                            "and docs/architecture.md")
            continue
        for line, there in imported_units(ast.parse(path.read_text(), str(path)), root):
            if there == here or there not in floor_of:
                continue
            up, down = floor_of[there], floor_of[here]
            sideways = up == down and floors[down][0] not in SHARED
            if up > down or sideways:
                problems.append(f"{path.relative_to(root)}:{line}: {here} ({floors[down][0]}) imports "
                                f"{there} ({floors[up][0]})")
    return problems


def test_no_module_imports_from_a_floor_above_it():
    assert upward_imports(PACKAGE, FLOORS) == []


def test_every_package_is_on_a_floor():
    units = {unit_of(p, PACKAGE) for p in PACKAGE.rglob("*.py")}
    placed = set().union(*(units for _, units in FLOORS))
    assert units <= placed, f"on no floor: {sorted(units - placed)}"


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_an_import_up_or_sideways_is_reported(tmp_path):
    """The check itself: a package made to break each rule once is caught at each place."""
    write(tmp_path, "__init__.py", "__version__ = '0'\n")
    write(tmp_path, "errors.py", "from digitnet import __version__\n")
    write(tmp_path, "runs/__init__.py", "from digitnet.errors import DigitnetError\n")
    write(tmp_path, "training/run.py", "def f():\n    from digitnet.inference import predictor\n")
    write(tmp_path, "inference/predictor.py", "from digitnet import runs\n")
    write(tmp_path, "runs/config.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                      "    import digitnet.web.app\n")
    write(tmp_path, "web/app.py", "from digitnet import training, errors\n")
    write(tmp_path, "stray.py", "")
    assert upward_imports(tmp_path, FLOORS) == [
        "runs/config.py:3: runs (runs) imports web (serving and measuring)",
        "stray.py: 'stray' is on no floor; add it to FLOORS and docs/architecture.md",
        "training/run.py:2: training (training and inference) imports inference (training and inference)",
    ]
