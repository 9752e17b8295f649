"""The benchmark's upstream: one small JSON route, as lean as an ASGI app gets.

``GET /ping`` answers ``{"ok":true}``; ``GET /caller`` echoes the caller assertion the gateway
attached (so the benchmark can check it was signed); anything else is 404. Served by uvicorn
with uvloop and httptools in one process, the same process for every proxy measured.
"""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send

from shared.identity import ASSERTION_HEADER

PING_PATH = "/ping"
CALLER_PATH = "/caller"

_JSON = [(b"content-type", b"application/json")]
_PING = orjson.dumps({"ok": True})
_NOT_FOUND = orjson.dumps({"detail": "not found"})
_ASSERTION_HEADER = ASSERTION_HEADER.encode()


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _assertion(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _ASSERTION_HEADER:
            return bytes(value).decode("latin-1")
    return None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app (``bench.upstream:app``); lifespan events are not used."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == PING_PATH:
        await _respond(send, 200, _PING)
    elif path == CALLER_PATH:
        await _respond(send, 200, orjson.dumps({"assertion": _assertion(scope)}))
    else:
        await _respond(send, 404, _NOT_FOUND)
