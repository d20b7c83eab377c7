"""Reading: the page, one digit, a number on one line, and what the server serves."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from digitnet.web import inputs, service
from digitnet.web.deps import Model, in_worker
from digitnet.web.routes.docs import ERRORS
from digitnet.web.schemas import Health, ModelInfo, Prediction, Reading

router = APIRouter()


# HEAD too: uptime monitors and link checkers ask for the page and the health without a body
@router.head("/", include_in_schema=False)
@router.get("/", include_in_schema=False)
async def page(request: Request) -> FileResponse:
    return FileResponse(request.app.state.static / "index.html", headers=request.app.state.page_headers)


@router.post("/api/predict", response_model=Prediction, responses=ERRORS,
             openapi_extra=inputs.OPENAPI_BODY, summary="Classify one digit")
async def predict(request: Request, model: Model) -> Prediction:
    data, source = await inputs.image_bytes(request)
    return await in_worker(request, service.predict_image, data, source, model.predictor)


@router.post("/api/read", response_model=Reading, responses=ERRORS,
             openapi_extra=inputs.OPENAPI_BODY, summary="Read a number on one line, digits touching or not")
async def read(request: Request, model: Model) -> Reading:
    data, source = await inputs.image_bytes(request)
    return await in_worker(request, service.read_image, data, source, model.line_reader)


@router.head("/api/health", include_in_schema=False)  # the same answer, as its own operation
@router.get("/api/health", response_model=Health)
async def health() -> Health:
    return Health(status="ok")


@router.get("/api/model", response_model=ModelInfo)
async def model_info(model: Model) -> ModelInfo:
    return model.info
