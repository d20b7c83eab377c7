"""The FastAPI application, assembled in one place from a ``Settings``.

The routes live in ``routes/`` (reading, explaining, corrections, admin, on-device) and declare what they
need as typed dependencies (``deps``): the served model (``swap.Served``, the one holder, with
the one ``swap()``), the store, the admin check and the same-origin check. Handlers are thin:
they take the image bytes out of the request (``inputs``) and hand them to ``service`` in a
worker thread, at most ``max_concurrent`` at once. Errors become one line with their own
status here: 415 not an image, 422 anything else sent wrong (a run that does not load
included), 429 a client's share of corrections used, 507 the store full, 503 a store that
cannot be used now (its reason, with the server's paths, goes to the log, not the client).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from digitnet.corrections import store as corrections_store
from digitnet.errors import DigitnetError
from digitnet.threads import serving_threads
from digitnet.vision.imaging import ImageError
from digitnet.web import service, swap
from digitnet.web.limits import BodySizeLimit
from digitnet.web.routes import admin, corrections, explain, ondevice, reading
from digitnet.web.settings import Settings

__all__ = ["SETTINGS_VARIABLE", "Settings", "create_app", "from_environment"]

STATIC = Path(__file__).parent / "static"
# How ``digitnet serve --workers N`` hands its settings to the worker processes (JSON).
SETTINGS_VARIABLE = "DIGITNET_SERVE_SETTINGS"
log = logging.getLogger("digitnet.web")

# The page's own policy: everything from this server, images also from data: and blob: URLs, and
# WebAssembly compiled (the runtime that reads on the device).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                               "img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STORE_UNUSABLE = "the corrections store cannot be used now; try again later"


def status_for(error: DigitnetError) -> int:
    """415 for what is not an image at all, 429 and 507 for the store's limits, 503 for a
    database the server cannot use, 422 for everything else the client sent wrong."""
    if isinstance(error, corrections_store.RateLimited):
        return 429
    if isinstance(error, corrections_store.StoreFull):
        return 507
    if isinstance(error, corrections_store.StoreError):
        return 503
    return 415 if isinstance(error, ImageError) and error.kind == "not_image" else 422


async def client_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DigitnetError)
    status = status_for(error)
    if status == 503:
        log.warning("digitnet: %s", error)  # names the file: for the operator only
        return JSONResponse({"detail": STORE_UNUSABLE}, status_code=503, headers={"Retry-After": "5"})
    headers = ({"Retry-After": str(error.retry_after_s)}
               if isinstance(error, corrections_store.RateLimited) else None)
    return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)


def create_app(settings: Settings, loaded: service.LoadedModel | None = None) -> FastAPI:
    """The whole server. ``loaded`` lets ``digitnet serve`` load (and check) the model before
    uvicorn starts; without it the model is loaded in the lifespan, once."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.served = swap.Served(loaded or service.load_model(settings.run_dir, settings.backend,
                                                                     settings.line_reader))
        app.state.limiter = anyio.CapacityLimiter(settings.max_concurrent)
        if settings.corrections_db is not None:
            corrections_store.create(settings.corrections_db)  # made or migrated once, before serving
        with serving_threads(settings.torch_threads):
            async with anyio.create_task_group() as tasks:
                if settings.store is not None:
                    tasks.start_soon(swap.watch, app.state.served, settings.store, settings.backend,
                                     settings.line_reader, settings.swap_check_s)
                yield
                tasks.cancel_scope.cancel()

    # FastAPIOffline: /docs and /redoc load their scripts and styles from this package, not a
    # CDN, so the API's documentation works on a machine without internet access.
    app = FastAPIOffline(title="digitnet", summary="Read handwritten digits with a trained digitnet model.",
                         lifespan=lifespan)
    app.state.settings = settings
    app.state.static = STATIC
    app.state.page_headers = PAGE_HEADERS
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.allowed_origins:  # the static site's page may post its corrections here
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.allowed_origins),
                           allow_methods=["GET", "POST"], allow_headers=["content-type"])
    app.add_exception_handler(DigitnetError, client_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (reading.router, explain.router, corrections.router, admin.router, ondevice.router):
        app.include_router(router)
    return app


def from_environment() -> FastAPI:
    """The application of one worker process of ``digitnet serve --workers N``: the settings
    come from the environment variable ``DIGITNET_SERVE_SETTINGS`` (``Settings.to_json``), and
    each worker loads the model itself. Also usable with any ASGI process manager, e.g.
    ``uvicorn digitnet.web.app:from_environment --factory``."""
    text = os.environ.get(SETTINGS_VARIABLE)
    if not text:
        raise DigitnetError(f"{SETTINGS_VARIABLE} is not set; start the server with 'digitnet serve'")
    return create_app(Settings.from_json(text))
