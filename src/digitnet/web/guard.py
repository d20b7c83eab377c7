"""Deadlines for a request's headers and body, so slow or idle clients cannot hold the server.

uvicorn closes a connection left idle *after* a response (``timeout_keep_alive``), but it
waits for ever for the first request on a new connection, and for the rest of headers or a
body sent a byte at a time; each such connection also counts towards ``limit_concurrency``,
beyond which everyone gets 503. ``GuardedH11`` is uvicorn's h11 protocol with one timer per
request:

- from the moment a connection opens, or the last response was sent, the request's headers
  must have arrived within ``header_s``; otherwise the connection is closed (nothing was
  asked, so nothing is answered);
- once they have, its body must have arrived within ``body_s``; otherwise the client gets
  408 with one line saying why, and the connection is closed.

Use it with ``uvicorn.Config(http=GuardedH11)`` (``--http digitnet.web.guard:GuardedH11``).
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_S = 10.0  # seconds for a request's headers to arrive
BODY_S = 30.0  # seconds for its body: 5 MB at 170 KB/s, slower than any phone line


def timeout_response(body_s: float) -> bytes:
    body = json.dumps({"detail": f"the request body did not arrive within {body_s:g} s; send it "
                                 "again on a faster connection, or a smaller image"}).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body))


class GuardedH11(H11Protocol):
    header_s = HEADER_S
    body_s = BODY_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline: asyncio.TimerHandle | None = None
        self.waiting_for = ""
        self._arm("headers", self.header_s)

    def _arm(self, what: str, seconds: float) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.waiting_for = what
        self.deadline = self.loop.call_later(seconds, self._expired) if what else None

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY and self.waiting_for == "headers":
            self._arm("body", self.body_s)
        elif state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR) and self.waiting_for:
            self._arm("", 0)  # the request is in: the application takes its time

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm("headers", self.header_s)  # the next request's, however it trickles in

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm("", 0)
        super().connection_lost(exc)

    def _expired(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if self.waiting_for == "body" and self.cycle is not None and not self.cycle.response_started:
            self.cycle.keep_alive = False
            self.transport.write(timeout_response(self.body_s))
        self.transport.close()


def protocol(header_s: float = HEADER_S, body_s: float = BODY_S) -> type[GuardedH11]:
    """``GuardedH11`` with other deadlines (tests use short ones)."""
    return type("GuardedH11", (GuardedH11,), {"header_s": header_s, "body_s": body_s})
