"""The admin's routes, behind the token: export and delete corrections, swap the served model."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from digitnet.corrections import dataset_files
from digitnet.corrections import store as corrections_store
from digitnet.web import inputs, swap
from digitnet.web.deps import Admin, SameSite, ServedDep, SettingsDep, Store, in_worker
from digitnet.web.routes.docs import ADMIN, BAD_FORMAT, BAD_RUN, CROSS_SITE, STORE_ERROR
from digitnet.web.schemas import ModelInfo, SwapIn

router = APIRouter(dependencies=[Admin])


@router.get("/api/corrections/export", responses={200: {"content": {"application/zip": {}}},
                                                  **ADMIN, **STORE_ERROR, 422: BAD_FORMAT},
            response_class=Response, summary="The labelled corrections an admin accepted, as a zip (admin)")
async def export_corrections(request: Request, db: Store, format: str = "idx",  # idx or png
                             status: str = "accepted") -> Response:  # or pending, rejected
    archive = await in_worker(request, lambda: dataset_files.zipped(corrections_store.labelled(db, [status]),
                                                             format))
    return Response(archive, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="corrections-{format}.zip"'})


# ":int": other names under /api/corrections/ (status, export) are not ids to delete
@router.delete("/api/corrections/{ident:int}", status_code=204,
               responses={**ADMIN, **STORE_ERROR, **CROSS_SITE}, dependencies=[SameSite],
               response_class=Response, summary="Delete one correction (admin)")
async def delete_correction(request: Request, ident: int, db: Store) -> Response:
    if not await in_worker(request, corrections_store.delete, db, [ident]):
        raise HTTPException(404, f"no correction {ident}; 'digitnet corrections list' shows them")
    return Response(status_code=204)


@router.post("/api/swap", response_model=ModelInfo, responses={**ADMIN, **CROSS_SITE, 422: BAD_RUN},
             dependencies=[SameSite], summary="Serve another run, without a restart (admin)")
async def swap_model(request: Request, served: ServedDep, settings: SettingsDep) -> ModelInfo:
    body = inputs.validated(SwapIn, await request.body(), 'send JSON {"run": "<run directory>"}')
    new = await in_worker(request, swap.publish, Path(body.run), settings.backend,
                          settings.line_reader, settings.store)
    served.swap(new)
    return new.info
