"""The ``digitnet`` command: a thin dispatcher over ``digitnet.commands.<name>``.

Each command module has ``register(subparsers)``, which adds its parser and sets ``run``
(args -> exit code). A ``DigitnetError`` anywhere becomes one line on stderr and exit code 2;
so does a file the system refuses (a path that does not exist or may not be written), which
no command can fix but the user can.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from digitnet import __version__
from digitnet.errors import DigitnetError

COMMANDS = ("data", "summary", "train", "train-lines", "evaluate", "predict", "read", "serve",
            "export", "show", "bench", "corrections", "finetune")


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (no usage dump) and exit code 2."""

    def error(self, message: str):
        # the top level's errors already read "digitnet: error: ...": name only a subcommand
        where = f"{self.prog}: " if " " in self.prog else ""
        raise DigitnetError(f"{where}{message} (see --help)")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; only the command ``argv`` starts with, when it names one: each
    command imports what it runs (torch, matplotlib, the training code), and importing all of
    them cost every command half a second more (2.5 s for 'digitnet predict --help', AMD EPYC)."""
    parser = Parser(prog="digitnet",
                    description="Train, evaluate and use a network that reads handwritten digits.")
    parser.add_argument("--version", action="version", version=f"digitnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)
    asked = [argv[0]] if argv and argv[0] in COMMANDS else COMMANDS
    for name in asked:
        importlib.import_module(f"digitnet.commands.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(argv).parse_args(argv)
        return int(args.run(args) or 0)
    except DigitnetError as e:
        print(f"digitnet: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:  # not about a path: a fault of digitnet's, shown in full
            raise
        print(f"digitnet: error: {e.filename}: {e.strerror or e}; check the path and its permissions",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("digitnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
