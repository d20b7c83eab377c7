"""Serving a new model without a restart, and never serving none.

``Served`` is the one holder of the served model: the model is read from it once per request
(one already in flight finishes with the model it began with) and replaced only by its
``swap()``. Every server process with a store watches its ``served.json``
(``digitnet.inference.served``); when it names another run, the process loads and checks that
run in a worker thread and swaps it in. Loading can fail in any way a run directory can be
wrong (a missing file, a key missing from metrics.json, weights of another shape): every
failure becomes one ``RunRefused``, the model served stays, the watcher logs it once and goes
on, and a later good run is swapped in. All processes of a store therefore end up serving the
run it names, or, while that run does not load, each keeps the one it had.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import anyio

from digitnet.errors import DigitnetError
from digitnet.inference import served
from digitnet.web import service

log = logging.getLogger("digitnet.web")
# an absolute path of two parts or more, as error messages name files
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/(?:[^\s/'\"(),;:]+/)+([^\s/'\"(),;:]*)")


class RunRefused(DigitnetError):
    """A run that does not load; the model served stays."""


def without_paths(message: str) -> str:
    """``message`` with each absolute path cut to its last part, for clients who must not
    learn the server's folders."""
    return ABSOLUTE_PATH.sub(lambda m: m.group(1) or "/", message)


def load_run(run_dir: Path, backend: str, line_reader: Path | None) -> service.LoadedModel:
    """``service.load_model`` with every failure as one ``RunRefused`` line (its full reason,
    paths included, goes to the server's log)."""
    try:
        return service.load_model(run_dir, backend, line_reader)
    except Exception as e:  # whatever a run holds, the server keeps serving
        reason = str(e) if isinstance(e, DigitnetError) else f"{type(e).__name__}: {e}"
        log.warning("digitnet: run %s does not load; keeping the served model: %s", run_dir, reason)
        raise RunRefused(f"run {Path(run_dir).name} does not load ({without_paths(reason)}); the "
                         "served model stays; check the run with 'digitnet evaluate --run DIR'") from e


class Served:
    """The served model, and its one way to change."""

    def __init__(self, model: service.LoadedModel) -> None:
        self.model = model

    def swap(self, new: service.LoadedModel) -> service.LoadedModel:
        """Serve ``new`` from the next request on; the model it replaced."""
        old, self.model = self.model, new
        if new.on_device.detail:
            log.info("digitnet: %s: %s", new.info.run, new.on_device.detail)
        return old


def publish(run_dir: Path, backend: str, line_reader: Path | None,
            store_dir: Path | None) -> service.LoadedModel:
    """Load and check ``run_dir`` (beside the line reader served), then name it in the store
    (if any) for the other processes; ``RunRefused`` and nothing named when it does not load."""
    loaded = load_run(run_dir, backend, line_reader)
    if store_dir is not None:
        served.write(store_dir, loaded.run_dir)
    return loaded


async def watch(holder: Served, store_dir: Path, backend: str, line_reader: Path | None,
                every_s: float) -> None:
    """Poll the store every ``every_s`` seconds; swap in the run it names when it changes. Any
    failure is logged once and the loop goes on."""
    refused: Path | None = None  # a run that did not load: not tried again until another is named
    said = ""  # the last warning, so that each is said once
    while True:
        await anyio.sleep(every_s)
        try:
            wanted = served.read(store_dir)
            if wanted not in (None, holder.model.run_dir, refused):
                refused = wanted
                holder.swap(await anyio.to_thread.run_sync(load_run, wanted, backend, line_reader))
                refused = None
                said = ""
        except Exception as e:  # the watcher must outlive any bad file
            if str(e) != said and not isinstance(e, RunRefused):  # RunRefused was logged in full
                log.warning("digitnet: keeping the served model: %s", e)
            said = str(e)
