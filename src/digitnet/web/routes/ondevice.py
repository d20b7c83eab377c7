"""The reader folder for reading on the device (see ``site``), following a swapped-in model."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

from digitnet.web import site
from digitnet.web.deps import Model

router = APIRouter()


@router.get("/ondevice/{name}", include_in_schema=False)
async def on_device(name: str, model: Model) -> Response:
    """A file of the folder; 404 with one plain sentence when this server has none."""
    found = model.on_device
    if found.info is None:
        return JSONResponse({"detail": found.reason}, status_code=404)
    if name == site.MODEL_INFO:
        return JSONResponse(found.info)
    if name not in found.files:
        return JSONResponse({"detail": f"no file {name} here"}, status_code=404)
    return FileResponse(found.files[name])
