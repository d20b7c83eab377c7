"""Taking the image out of a request: a multipart field ``file`` or JSON ``{"image": base64}``;
for a correction, also its ``label`` and ``kind`` (form fields, or JSON beside the image).

Both arrive at the same endpoints, so the body is parsed by hand rather than by FastAPI's
parameter binding; ``OPENAPI_BODY`` documents both forms on the /docs page.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import AsyncIterator
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from digitnet.errors import DigitnetError
from digitnet.vision.imaging import ImageError
from digitnet.web.schemas import CorrectionFields, CorrectionIn, ImageIn

DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.+-]+)*;base64,", re.IGNORECASE)
HOW = "send multipart/form-data with the image in a field named 'file', or JSON {\"image\": \"<base64>\"}"
HOW_CORRECTION = ("send multipart/form-data with the image in 'file' and the right answer in 'label' "
                  "(and 'kind': digit or number), or the same as JSON with the image in base64")
M = TypeVar("M", bound=BaseModel)

OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}}},
            },
            "application/json": {"schema": ImageIn.model_json_schema()},
        },
    },
}
CORRECTION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file", "label"],
                           "properties": {"file": {"type": "string", "format": "binary"},
                                          **CorrectionFields.model_json_schema()["properties"]}},
            },
            "application/json": {"schema": CorrectionIn.model_json_schema()},
        },
    },
}


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def image_bytes(request: Request) -> tuple[bytes, str]:
    """(image file bytes, a name for messages) from either request form."""
    kind = content_type(request)
    if kind == "multipart/form-data":
        return await from_multipart(request)
    if kind == "application/json":
        return from_json(await request.body())
    raise ImageError(f"unsupported content type {kind or '(none)'!r}; {HOW}", "not_image")


async def correction(request: Request) -> tuple[bytes, str, CorrectionFields]:
    """(image file bytes, a name for messages, the label and kind) from either request form."""
    kind = content_type(request)
    if kind == "multipart/form-data":
        async with parsed_form(request) as form:
            data, source = await uploaded(form)
            fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
            return data, source, validated(CorrectionFields, fields, HOW_CORRECTION)
    if kind == "application/json":
        sent = validated(CorrectionIn, await request.body(), HOW_CORRECTION)
        return *base64_image(sent.image), CorrectionFields(label=sent.label, kind=sent.kind)
    raise ImageError(f"unsupported content type {kind or '(none)'!r}; {HOW_CORRECTION}", "not_image")


async def from_multipart(request: Request) -> tuple[bytes, str]:
    async with parsed_form(request) as form:
        return await uploaded(form)


async def uploaded(form: FormData) -> tuple[bytes, str]:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise DigitnetError(f"no file in the multipart field 'file'; {HOW}")
    return await upload.read(), upload.filename or "upload"


@contextlib.asynccontextmanager
async def parsed_form(request: Request) -> AsyncIterator[FormData]:
    """The multipart form; a malformed body (no boundary, cut-off parts, too many fields) is a
    422 like every other body of the wrong shape, not Starlette's undocumented 400."""
    try:
        form = await request.form(max_files=1, max_fields=10)
    except HTTPException as e:
        raise DigitnetError(f"malformed multipart body ({e.detail}); {HOW}") from e
    try:
        yield form
    finally:
        await form.close()  # the uploads' spooled temporary files


def validated(model: type[M], data: bytes | dict, how: str) -> M:
    """``data`` (JSON bytes or form fields) as ``model``; its first problem as one line."""
    try:
        if isinstance(data, dict):
            return model.model_validate(data)
        return model.model_validate_json(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise DigitnetError(f"bad {'form' if isinstance(data, dict) else 'JSON body'} "
                            f"({where}: {first['msg']}); {how}") from e


def from_json(body: bytes) -> tuple[bytes, str]:
    return base64_image(validated(ImageIn, body, HOW).image)


def base64_image(text: str) -> tuple[bytes, str]:
    text = DATA_URL.sub("", text.strip(), count=1)
    try:
        return base64.b64decode(text, validate=True), "image"
    except (binascii.Error, ValueError) as e:
        raise DigitnetError(f"'image' is not valid base64 ({e}); {HOW}") from e
