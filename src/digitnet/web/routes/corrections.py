"""People's corrections: whether they are kept here, and keeping one."""

from __future__ import annotations

from fastapi import APIRouter, Request

from digitnet.web import inputs, service
from digitnet.web.deps import Model, SameSite, SettingsDep, Store, in_worker
from digitnet.web.routes.docs import CROSS_SITE, ERRORS, LIMITED, OFF, STORE_ERROR
from digitnet.web.schemas import CorrectionOut, CorrectionsStatus

router = APIRouter()


@router.get("/api/corrections/status", response_model=CorrectionsStatus)
async def corrections_status(settings: SettingsDep) -> CorrectionsStatus:
    return CorrectionsStatus(collecting=settings.corrections_db is not None)


@router.post("/api/corrections", status_code=201, response_model=CorrectionOut,
             responses={**ERRORS, **OFF, **STORE_ERROR, **CROSS_SITE, **LIMITED},
             openapi_extra=inputs.CORRECTION_BODY, dependencies=[SameSite],
             summary="Keep a person's correction of an answer (pending an admin's review)")
async def correct(request: Request, db: Store, model: Model, settings: SettingsDep) -> CorrectionOut:
    data, source, fields = await inputs.correction(request)
    client = request.client.host if request.client else None
    return await in_worker(request, service.correct, data, source, fields, model, db, client,
                           settings.limits)
