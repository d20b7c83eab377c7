"""Which run a server's store says is served: ``served.json`` in the store folder.

``digitnet serve`` writes it when it starts, ``digitnet finetune --swap`` and the admin route
``POST /api/swap`` rewrite it, and every server process using that store watches it: a new
run named there is loaded and swapped in without a restart (``digitnet.web.swap``). It is
written atomically, so a process never reads half of it.
"""

from __future__ import annotations

import json
from pathlib import Path

from digitnet import atomic
from digitnet.errors import DigitnetError

FILE_NAME = "served.json"


def write(store_dir: str | Path, run_dir: str | Path) -> None:
    atomic.write_json(Path(store_dir) / FILE_NAME, {"run": str(Path(run_dir).resolve())})


def read(store_dir: str | Path) -> Path | None:
    """The run the store names, or None when it names none yet."""
    path = Path(store_dir) / FILE_NAME
    if not path.is_file():
        return None
    try:
        return Path(json.loads(path.read_text())["run"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DigitnetError(f"{path}: unreadable ({e}); delete it, or start digitnet serve with "
                            "--run DIR to rewrite it") from e
