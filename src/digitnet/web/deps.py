"""The typed dependencies the routes declare: the settings, the served model, the store, the
admin check and the same-origin check. Each reads what ``create_app`` put on ``app.state``.

They are ``async def`` because none of them blocks: FastAPI runs a plain ``def`` dependency in
its thread pool, and those hand-offs (two for each reading request) cost the event loop more
than the dependencies themselves."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import anyio
from fastapi import Depends, HTTPException, Request

from digitnet.web import admin, service
from digitnet.web.settings import Settings
from digitnet.web.swap import Served

T = TypeVar("T")
CROSS_SITE = ("cross-site request refused: this server changes nothing for another site's page; "
              "send it from this server's own page (its operator can allow a site with "
              "'digitnet serve --allow-origin')")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_served(request: Request) -> Served:
    return request.app.state.served


async def get_model(served: Annotated[Served, Depends(get_served)]) -> service.LoadedModel:
    """The model served when the request began: it answers the whole request, swap or not."""
    return served.model


async def get_store(settings: Annotated[Settings, Depends(get_settings)]) -> Path:
    """The corrections database; 404 saying how to turn it on when the server has none."""
    if settings.corrections_db is None:
        raise HTTPException(404, "this server does not collect corrections; start it with "
                                 "digitnet serve --store DIR")
    return settings.corrections_db


async def require_admin(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    admin.require(request, settings.admin_token)


def same_site(request: Request, settings: Settings) -> bool:
    """Whether a browser sent this request from this server's own page (or an allowed origin's).

    Browsers name the page's origin in ``Origin`` on every cross-origin request and every POST
    (``"null"`` for sandboxed and opaque ones), and say ``Sec-Fetch-Site``; a request with
    neither comes from no browser page (curl, a script), which no other site can make a
    visitor's browser send.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        if origin.rstrip("/") in settings.allowed_origins:
            return True
        return origin != "null" and urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


async def require_same_site(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """403 for a state-changing request another site's page made a browser send."""
    if not same_site(request, settings):
        raise HTTPException(403, CROSS_SITE)


Model = Annotated[service.LoadedModel, Depends(get_model)]
Store = Annotated[Path, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ServedDep = Annotated[Served, Depends(get_served)]
Admin = Depends(require_admin)
SameSite = Depends(require_same_site)


async def in_worker(request: Request, fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` in a worker thread, at most ``max_concurrent`` at once: the event loop
    keeps serving while the CPU works, and memory stays bounded however many clients wait."""
    return await anyio.to_thread.run_sync(partial(fn, *args), limiter=request.app.state.limiter)
