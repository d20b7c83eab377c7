"""Serving a new model without a restart.

Every server process with a store watches its ``served.json`` (``digitnet.inference.served``);
when it names another run, the process loads and checks that run in a worker thread, then
replaces ``app.state.model`` in one assignment. A request takes the model once, when it
starts, so one already in flight finishes with the model it began with, and the next one gets
the new model: no request fails and none sees half of each. A run that does not load is not
swapped in; the server keeps its model and says why, once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
from fastapi import FastAPI

from digitnet.errors import DigitnetError
from digitnet.inference import served
from digitnet.web import service

log = logging.getLogger("digitnet.web")


def publish(run_dir: Path, backend: str, line_reader: Path | None,
            store_dir: Path | None) -> service.LoadedModel:
    """Load and check ``run_dir`` (beside the line reader served), then name it in the store
    (if any) for the other processes."""
    loaded = service.load_model(run_dir, backend, line_reader)
    if store_dir is not None:
        served.write(store_dir, loaded.run_dir)
    return loaded


async def watch(app: FastAPI, store_dir: Path, backend: str, line_reader: Path | None,
                every_s: float) -> None:
    """Poll the store every ``every_s`` seconds; swap in the run it names when it changes."""
    refused: Path | None = None  # a run that did not load: not tried again until another is named
    said = ""  # the last warning, so that each is said once
    while True:
        await anyio.sleep(every_s)
        try:
            wanted = served.read(store_dir)
            if wanted not in (None, app.state.model.run_dir, refused):
                refused = wanted
                app.state.model = await anyio.to_thread.run_sync(service.load_model, wanted, backend,
                                                                 line_reader)
                refused = None
        except DigitnetError as e:
            if str(e) != said:
                log.warning("digitnet: keeping the served model: %s", e)
                said = str(e)
