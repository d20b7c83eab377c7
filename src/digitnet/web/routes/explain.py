"""What the network sees in one digit: a second request the page makes only when asked, so that
the answer itself (/api/predict) costs no more than before."""

from __future__ import annotations

from fastapi import APIRouter, Request

from digitnet.web import inputs, service
from digitnet.web.deps import Model, in_worker
from digitnet.web.routes.docs import ERRORS
from digitnet.web.schemas import Explanation

router = APIRouter()


@router.post("/api/explain", response_model=Explanation, responses=ERRORS,
             openapi_extra=inputs.OPENAPI_BODY,
             summary="What the network sees in one digit: its first layer's feature maps, and the "
                     "pixels that pushed it towards its answer (and an unsure runner-up)")
async def explain(request: Request, model: Model) -> dict:
    data, source = await inputs.image_bytes(request)
    return await in_worker(request, service.explain_image, data, source, model.predictor)
