"""The FastAPI application, assembled in one place from a ``Settings``.

Handlers are thin: they take the image bytes out of the request (``inputs``) and hand them
to ``service`` in a worker thread, so the event loop keeps serving while the CPU works. A
capacity limiter bounds how many images are decoded and classified at once (memory and CPU
stay bounded however many clients connect) and torch runs each of them on few threads.
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
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from digitnet.errors import DigitnetError
from digitnet.inference.predictor import DEFAULT_BACKEND
from digitnet.vision.imaging import ImageError
from digitnet.web import inputs, service, site
from digitnet.web.limits import BodySizeLimit
from digitnet.web.schemas import ErrorOut, Health, ModelInfo, Prediction, Reading

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

    def to_json(self) -> str:
        return json.dumps({k: str(v) if isinstance(v, Path) else v
                           for k, v in dataclasses.asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """Settings from ``to_json``'s JSON; fields left out keep their defaults."""
        try:
            fields = json.loads(text)
            paths = {k: Path(fields[k]) for k in ("run_dir", "line_reader") if fields.get(k)}
            return cls(**{**fields, **paths})
        except (ValueError, TypeError, KeyError) as e:
            names = ", ".join(f.name for f in dataclasses.fields(cls))
            raise DigitnetError(f"bad server settings {text[:80]!r} ({e}); give a JSON object with "
                                f"run_dir and any of {names}") from e


def status_for(error: DigitnetError) -> int:
    """415 for what is not an image at all, 422 for everything else the client sent wrong."""
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
        app.state.on_device = site.on_device(settings.run_dir)
        app.state.limiter = anyio.CapacityLimiter(settings.max_concurrent)
        previous_threads = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(settings.torch_threads)
        # one OpenCV thread per image: its threads on an image of a few hundred pixels a side
        # cost more in waiting for each other than they save, and requests run in parallel
        cv2.setNumThreads(1)
        try:
            yield
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
        found = request.app.state.on_device
        if found.info is None:
            return JSONResponse({"detail": f"reading on this device is unavailable: {found.reason}"},
                                status_code=404)
        if name == site.MODEL_INFO:
            return JSONResponse(found.info)
        if name not in found.files:
            return JSONResponse({"detail": f"no file {name} here"}, status_code=404)
        return FileResponse(found.files[name])

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
