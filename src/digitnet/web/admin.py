"""The admin token: who may export and delete corrections and swap the served model over HTTP.

The token is set on the server (``DIGITNET_ADMIN_TOKEN``, never a command-line option, which
other users of the machine could read); without one, the admin routes answer 404 and say how
to turn them on. Clients send ``Authorization: Bearer <token>``; the comparison takes the
same time however much of the token is right.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from digitnet.errors import DigitnetError

TOKEN_VARIABLE = "DIGITNET_ADMIN_TOKEN"
MIN_LENGTH = 16
MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe())'"


def check_token(token: str | None) -> str | None:
    """The token from the environment, refused when empty (set but blank: a mistake, not "off")
    or too short to resist guessing."""
    if token is None:
        return None
    if not token.strip():
        raise DigitnetError(f"{TOKEN_VARIABLE} is set but empty; unset it to keep the admin routes "
                            f"off, or set it to at least {MIN_LENGTH} random characters, e.g. from: "
                            f"{MAKE_ONE}")
    if len(token) < MIN_LENGTH:
        raise DigitnetError(f"{TOKEN_VARIABLE} has {len(token)} characters; use at least "
                            f"{MIN_LENGTH} random ones, e.g. from: {MAKE_ONE}")
    return token


def require(request: Request, token: str | None) -> None:
    """Let the request through only with the server's admin token."""
    if not token:
        raise HTTPException(404, f"admin routes are off; start the server with {TOKEN_VARIABLE} "
                                 "set to turn them on")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "missing or wrong admin token; send the header "
                                 "'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
