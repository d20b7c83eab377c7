"""The docs say what the code does: every ``digitnet ...`` command line in README.md and docs/
names a real command and real options (checked against the parsers of ``digitnet.cli``), and
the module map of docs/architecture.md lists exactly the package's modules."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from digitnet.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGE = ROOT / "src" / "digitnet"

FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# Where a command line starts: digitnet itself, or a launcher running it as a module.
# (Python's "from digitnet import runs" is not one.)
START = re.compile(r"(?:^|(?<!from)\s|/)(?:digitnet|-m digitnet)\s+(?=[-\w\[<])")
COMMENT = re.compile(r"(?:^|\s)#(?:\s|$)")
SHELL_END = re.compile(r"\s(?:#|\||&&|;|>|2>|&$)")  # a comment, a pipe, the next command...
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_-]*(?:\.\.\.)?$|^<.*>$|^\.\.\.$")


def command_lines(text: str) -> list[str]:
    """The ``digitnet`` invocations of a Markdown page: lines of its code blocks (joined over
    backslash continuations) and inline code spans, each from ``digitnet``'s first argument."""
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            found += invocations(COMMENT.split(line.removeprefix("$ "))[0])
    for span in INLINE.findall(FENCE.sub("", text)):
        found += invocations(span)
    return found


def invocations(line: str) -> list[str]:
    match = START.search(line)
    if not match:
        return []
    rest = line[match.end():]
    end = SHELL_END.search(rest)
    return [(rest[:end.start()] if end else rest).strip()]


def tokens(line: str) -> list[str]:
    """shlex tokens, with the docs' [optional] brackets taken off (the options inside stay)."""
    words = shlex.split(line.replace("[", " [").replace("]", "] "))
    return [w.strip("[]").rstrip(",") for w in words if w.strip("[]").rstrip(",")]


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check(argv: list[str], parser: argparse.ArgumentParser, where: str) -> list[str]:
    """Problems with ``argv`` for ``parser``: unknown commands, options and choices. Values
    written as placeholders (DIR, N, IMAGE..., <path>) stand for any value."""
    problems = []
    options = {s: a for a in parser._actions for s in a.option_strings}
    positionals = [a for a in parser._actions if not a.option_strings]
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token.startswith("--") or (token.startswith("-") and len(token) == 2):
            name, _, value = token.partition("=")
            action = options.get(name)
            if action is None:
                problems.append(f"{where}: {name} is not an option of '{parser.prog}'")
                continue
            if action.nargs != 0 and not value and i < len(argv):
                value, i = argv[i], i + 1
            while action.nargs in ("*", "+") and i < len(argv) and not argv[i].startswith("-"):
                i += 1  # the option's further values (--accept 12 13 14)
            if value and action.choices and not PLACEHOLDER.match(value):
                problems += [f"{where}: {name} {v}: not one of {sorted(action.choices)}"
                             for v in value.split("|") if v not in action.choices]
            continue
        if not positionals:
            problems.append(f"{where}: '{parser.prog}' takes no argument {token!r}")
            continue
        action = positionals[0]
        if isinstance(action, argparse._SubParsersAction):
            if PLACEHOLDER.match(token):  # digitnet COMMAND --help
                return problems
            names = token.split("|")  # corrections list|export|delete
            unknown = [n for n in names if n not in action.choices]
            if unknown:
                return problems + [f"{where}: '{parser.prog} {token}' is not a command"]
            for name in names:
                problems += check(argv[i:], action.choices[name], where)
            return problems
        if action.choices and not PLACEHOLDER.match(token):
            problems += [f"{where}: {token!r} is not one of {sorted(action.choices)}"
                         for t in token.split("|") if t not in action.choices]
        if action.nargs not in ("*", "+", "..."):
            positionals.pop(0)
    return problems


def all_command_lines() -> list[tuple[str, str]]:
    return [(f"{page.relative_to(ROOT)}: digitnet {line}", line)
            for page in PAGES for line in command_lines(page.read_text(encoding="utf-8"))]


def test_docs_hold_command_lines_to_check():
    lines = all_command_lines()
    assert len(lines) > 100
    assert any("torchrun" in where for where, _ in lines) or any(
        "--nproc-per-node" in page.read_text(encoding="utf-8") for page in PAGES)


def test_every_documented_command_line_parses():
    parser = build_parser()
    problems = [p for where, line in all_command_lines() for p in check(tokens(line), parser, where)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("line, wrong", [
    ("read photo.png --backend onnx", "--backend"),
    ("predict x.png --run", None),
    ("show predictionz", "predictionz"),
    ("train --recipe quick", "quick"),
    ("corrections list|prune", "prune"),
    ("serve [--run DIR] [--workers N]", None),
    ("COMMAND --help", None),
    ("fly --high", "fly"),
])
def test_the_check_finds_what_it_should(line, wrong):
    problems = check(tokens(line), build_parser(), "here")
    assert (wrong is None) == (not problems), problems
    assert wrong is None or wrong in problems[0]


def test_command_lines_are_found_in_code_and_prose():
    text = ("Run `digitnet train --epochs 3` or\n```sh\n$ digitnet predict a.png \\\n  --json  # one\n"
            "torchrun --standalone -m digitnet train --epochs 1 | tee log\n```\n"
            "`digitnet.datasets.mnist.load_data()` is Python.\n"
            "```\nfrom digitnet import runs\n```\n")
    assert sorted(command_lines(text)) == ["predict a.png    --json", "train --epochs 1",
                                           "train --epochs 3"]


# The module map: "`package/`" (or "Top level") before each table, the modules in its first column.
SECTION = re.compile(r"^## Module map\n(.*?)(?=^## |\Z)", re.DOTALL | re.MULTILINE)
TABLE_OWNER = re.compile(r"^(?:`([\w/]+)/`|Top level)")
ROW = re.compile(r"^\| ([^|]+) \|")


def mapped_names() -> set[str]:
    """Every module and folder the map lists, as paths under src/digitnet/."""
    text = SECTION.search((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")).group(1)
    owner, names = "", set()
    for line in text.splitlines():
        if m := TABLE_OWNER.match(line):
            owner = f"{m.group(1)}/" if m.group(1) else ""
        elif (m := ROW.match(line)) and m.group(1) not in ("module", "---"):
            names |= {owner + name for name in re.findall(r"`([\w./]+)`", m.group(1))}
    return names


def package_modules() -> set[str]:
    return {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
            if p.name != "__init__.py" and "__pycache__" not in p.parts}


def test_module_map_lists_every_module_and_no_other():
    mapped = mapped_names()
    modules = {n for n in mapped if n.endswith(".py")}
    assert not modules - package_modules(), f"in the map, not in the package: {modules - package_modules()}"
    assert not package_modules() - modules, f"in the package, not in the map: {package_modules() - modules}"
    folders = {n for n in mapped if n.endswith("/")}
    assert all((PACKAGE / f).is_dir() for f in folders), folders
    assert not [n for n in mapped if not n.endswith((".py", "/"))]


def test_module_map_has_no_duplicate_rows():
    text = SECTION.search((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")).group(1)
    rows = [line for line in text.splitlines() if ROW.match(line)]
    firsts = [ROW.match(r).group(1) for r in rows if ROW.match(r).group(1) not in ("module", "---")]
    owners = re.findall(r"^(?:`[\w/]+/`|Top level)", text, re.MULTILINE)
    assert len(owners) == len(set(owners)), owners
    assert firsts, "no module rows found"
