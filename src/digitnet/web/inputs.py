"""Taking the image out of a request: a multipart field ``file`` or JSON ``{"image": base64}``.

Both arrive at the same endpoints, so the body is parsed by hand rather than by FastAPI's
parameter binding; ``OPENAPI_BODY`` documents both forms on the /docs page.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import AsyncIterator

from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from digitnet.errors import DigitnetError
from digitnet.vision.imaging import ImageError
from digitnet.web.schemas import ImageIn

DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.+-]+)*;base64,", re.IGNORECASE)
HOW = "send multipart/form-data with the image in a field named 'file', or JSON {\"image\": \"<base64>\"}"

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


async def image_bytes(request: Request) -> tuple[bytes, str]:
    """(image file bytes, a name for messages) from either request form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return await from_multipart(request)
    if kind == "application/json":
        return from_json(await request.body())
    raise ImageError(f"unsupported content type {kind or '(none)'!r}; {HOW}", "not_image")


async def from_multipart(request: Request) -> tuple[bytes, str]:
    async with parsed_form(request) as form:
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


def from_json(body: bytes) -> tuple[bytes, str]:
    try:
        text = ImageIn.model_validate_json(body).image
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise DigitnetError(f"bad JSON body ({where}: {first['msg']}); {HOW}") from e
    text = DATA_URL.sub("", text.strip(), count=1)
    try:
        return base64.b64decode(text, validate=True), "image"
    except (binascii.Error, ValueError) as e:
        raise DigitnetError(f"'image' is not valid base64 ({e}); {HOW}") from e
