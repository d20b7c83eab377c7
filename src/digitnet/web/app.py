"""The FastAPI application, assembled in one place from a ``Settings``.

Handlers are thin: they take the image bytes out of the request (``inputs``) and hand them
to ``service`` in a worker thread, so the event loop keeps serving while the CPU works. A
capacity limiter bounds how many images are decoded and classified at once (memory and CPU
stay bounded however many clients connect) and torch runs each of them on few threads.
Corrections go to ``digitnet.corrections.store``; the admin routes check ``admin``'s token;
``swap`` changes the served model while the server runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio
import cv2
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from digitnet.corrections import export
from digitnet.corrections import store as corrections_store
from digitnet.errors import DigitnetError
from digitnet.inference.predictor import DEFAULT_BACKEND
from digitnet.vision.imaging import ImageError
from digitnet.web import admin, inputs, service, site, swap
from digitnet.web.limits import BodySizeLimit
from digitnet.web.schemas import (
    CorrectionOut,
    CorrectionsStatus,
    ErrorOut,
    Health,
    ModelInfo,
    Prediction,
    Reading,
    SwapIn,
)

STATIC = Path(__file__).parent / "static"
T = TypeVar("T")
# How ``digitnet serve --workers N`` hands its settings to the worker processes (JSON).
SETTINGS_VARIABLE = "DIGITNET_SERVE_SETTINGS"

# The page's own policy: everything from this server, images also from data: and blob: URLs, and
# WebAssembly compiled (the runtime that reads on the device).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                               "img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ERRORS = {
    413: {"model": ErrorOut, "description": "the request body is over the size limit"},
    415: {"model": ErrorOut, "description": "the body is not an image (or not multipart/JSON)"},
    422: {"model": ErrorOut, "description": "a corrupt, empty, too large or out-of-bounds image "
                                            "(too thin; for /api/read, writing too long for a "
                                            "number or on several lines), a JSON body of the "
                                            "wrong shape, or a malformed multipart body"},
}
OFF = {404: {"model": ErrorOut, "description": "corrections are off on this server"}}
ADMIN = {401: {"model": ErrorOut, "description": "no admin token, or a wrong one"},
         404: {"model": ErrorOut, "description": "admin routes are off (no token set on the server), "
                                                 "or no such correction"}}
BAD_FORMAT = {"model": ErrorOut, "description": "an export format other than idx or png"}
BAD_RUN = {"model": ErrorOut, "description": "a run that does not load, or a body of the wrong shape"}
STORE_ERROR = {503: {"model": ErrorOut, "description": "the corrections database cannot be used now"}}


def default_concurrency() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Settings:
    run_dir: Path  # the run whose model is served
    line_reader: Path | None = None  # the reader of whole numbers; None: the package's
    backend: str = DEFAULT_BACKEND  # a key of digitnet.inference.predictor.BACKENDS
    max_body_bytes: int = 5 * 1024 * 1024  # larger requests get 413 before they are read
    torch_threads: int = 1  # torch intra-op threads per inference; concurrency comes from requests
    max_concurrent: int = field(default_factory=default_concurrency)  # images processed at once
    # The folder of corrections.sqlite and served.json: with it, corrections are collected and
    # a run named in served.json is swapped in; without it, neither.
    store: Path | None = None
    admin_token: str | None = field(default=None, repr=False)  # None: the admin routes are off
    swap_check_s: float = 1.0  # how often served.json is looked at

    @property
    def corrections_db(self) -> Path | None:
        return None if self.store is None else corrections_store.path_in(self.store)

    def to_json(self) -> str:
        return json.dumps({k: str(v) if isinstance(v, Path) else v
                           for k, v in dataclasses.asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """Settings from ``to_json``'s JSON; fields left out keep their defaults."""
        try:
            fields = json.loads(text)
            paths = {k: Path(fields[k]) for k in ("run_dir", "line_reader", "store") if fields.get(k)}
            return cls(**{**fields, **paths})
        except (ValueError, TypeError, KeyError) as e:
            names = ", ".join(f.name for f in dataclasses.fields(cls))
            raise DigitnetError(f"bad server settings {text[:80]!r} ({e}); give a JSON object with "
                                f"run_dir and any of {names}") from e


def status_for(error: DigitnetError) -> int:
    """415 for what is not an image at all, 503 for a database the server cannot use, 422 for
    everything else the client sent wrong."""
    if isinstance(error, corrections_store.StoreError):
        return 503
    return 415 if isinstance(error, ImageError) and error.kind == "not_image" else 422


async def client_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DigitnetError)
    return JSONResponse({"detail": str(error)}, status_code=status_for(error))


def create_app(settings: Settings, loaded: service.LoadedModel | None = None) -> FastAPI:
    """The whole server. ``loaded`` lets ``digitnet serve`` load (and check) the model before
    uvicorn starts; without it the model is loaded in the lifespan, once."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.model = loaded or service.load_model(settings.run_dir, settings.backend,
                                                       settings.line_reader)
        app.state.limiter = anyio.CapacityLimiter(settings.max_concurrent)
        if settings.corrections_db is not None:
            corrections_store.create(settings.corrections_db)  # made or migrated once, before serving
        previous_threads = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(settings.torch_threads)
        # one OpenCV thread per image: its threads on an image of a few hundred pixels a side
        # cost more in waiting for each other than they save, and requests run in parallel
        cv2.setNumThreads(1)
        try:
            async with anyio.create_task_group() as tasks:
                if settings.store is not None:
                    tasks.start_soon(swap.watch, app, settings.store, settings.backend,
                                     settings.line_reader, settings.swap_check_s)
                yield
                tasks.cancel_scope.cancel()
        finally:
            torch.set_num_threads(previous_threads[0])
            cv2.setNumThreads(previous_threads[1])

    # FastAPIOffline: /docs and /redoc load their scripts and styles from this package, not a
    # CDN, so the API's documentation works on a machine without internet access.
    app = FastAPIOffline(title="digitnet", summary="Read handwritten digits with a trained digitnet model.",
                         lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(DigitnetError, client_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def in_worker(request: Request, fn: Callable[..., T], *args) -> T:
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=request.app.state.limiter)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.post("/api/predict", response_model=Prediction, responses=ERRORS,
              openapi_extra=inputs.OPENAPI_BODY, summary="Classify one digit")
    async def predict(request: Request) -> Prediction:
        data, source = await inputs.image_bytes(request)
        return await in_worker(request, service.predict_image, data, source,
                               request.app.state.model.predictor)

    @app.post("/api/read", response_model=Reading, responses=ERRORS,
              openapi_extra=inputs.OPENAPI_BODY, summary="Read a number on one line, digits touching or not")
    async def read(request: Request) -> Reading:
        data, source = await inputs.image_bytes(request)
        return await in_worker(request, service.read_image, data, source,
                               request.app.state.model.line_reader)

    @app.get("/ondevice/{name}", include_in_schema=False)
    async def on_device(request: Request, name: str) -> Response:
        """The reader folder for reading on the device (see ``site``); 404 with the reason when
        this server has none."""
        found = request.app.state.model.on_device  # follows a swapped-in model
        if found.info is None:
            return JSONResponse({"detail": f"reading on this device is unavailable: {found.reason}"},
                                status_code=404)
        if name == site.MODEL_INFO:
            return JSONResponse(found.info)
        if name not in found.files:
            return JSONResponse({"detail": f"no file {name} here"}, status_code=404)
        return FileResponse(found.files[name])

    def corrections_db() -> Path:
        if settings.corrections_db is None:
            raise HTTPException(404, "this server does not collect corrections; start it with "
                                     "digitnet serve --store DIR")
        return settings.corrections_db

    @app.get("/api/corrections/status", response_model=CorrectionsStatus)
    async def corrections_status() -> CorrectionsStatus:
        return CorrectionsStatus(collecting=settings.corrections_db is not None)

    @app.post("/api/corrections", status_code=201, response_model=CorrectionOut,
              responses={**ERRORS, **OFF, **STORE_ERROR}, openapi_extra=inputs.CORRECTION_BODY,
              summary="Keep a person's correction of an answer")
    async def correct(request: Request) -> CorrectionOut:
        db = corrections_db()
        data, source, fields = await inputs.correction(request)
        return await in_worker(request, service.correct, data, source, fields,
                               request.app.state.model, db)

    @app.get("/api/corrections/export", responses={200: {"content": {"application/zip": {}}},
                                                   **ADMIN, **STORE_ERROR, 422: BAD_FORMAT},
             response_class=Response, summary="All labelled corrections as a zip (admin)")
    async def export_corrections(request: Request, format: str = "idx") -> Response:  # idx or png
        admin.require(request, settings.admin_token)
        db = corrections_db()
        archive = await in_worker(request, lambda: export.zipped(corrections_store.labelled(db), format))
        return Response(archive, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="corrections-{format}.zip"'})

    # ":int": other names under /api/corrections/ (status, export) are not ids to delete
    @app.delete("/api/corrections/{ident:int}", status_code=204, responses={**ADMIN, **STORE_ERROR},
                response_class=Response, summary="Delete one correction (admin)")
    async def delete_correction(request: Request, ident: int) -> Response:
        admin.require(request, settings.admin_token)
        db = corrections_db()
        if not await in_worker(request, corrections_store.delete, db, [ident]):
            raise HTTPException(404, f"no correction {ident}; 'digitnet corrections list' shows them")
        return Response(status_code=204)

    @app.post("/api/swap", response_model=ModelInfo, responses={**ADMIN, 422: BAD_RUN},
              summary="Serve another run, without a restart (admin)")
    async def swap_model(request: Request) -> ModelInfo:
        admin.require(request, settings.admin_token)
        body = inputs.validated(SwapIn, await request.body(), 'send JSON {"run": "<run directory>"}')
        new = await in_worker(request, swap.publish, Path(body.run), settings.backend,
                                settings.line_reader, settings.store)
        request.app.state.model = new
        return new.info

    @app.get("/api/health", response_model=Health)
    async def health() -> Health:
        return Health(status="ok")

    @app.get("/api/model", response_model=ModelInfo)
    async def model(request: Request) -> ModelInfo:
        return request.app.state.model.info

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
