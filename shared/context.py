"""Per-request context carried across awaits: the request id and the W3C trace context."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"
TRACEPARENT_HEADER = "traceparent"

request_id_var: ContextVar[str | None] = ContextVar("kassa_request_id", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("kassa_traceparent", default=None)

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_request_id() -> str:
    """A fresh, unguessable request id."""
    return secrets.token_hex(16)


def accept_request_id(value: str | None) -> str:
    """The caller's request id when it is well formed, otherwise a new one.

    A request id reaches logs and headers, so anything odd (spaces, control characters, a
    kilobyte of text) is replaced rather than echoed.
    """
    if value and _REQUEST_ID_RE.match(value):
        return value
    return new_request_id()


def child_traceparent(incoming: str | None) -> str:
    """A traceparent for the next hop: same trace id, new span id (W3C Trace Context)."""
    match = _TRACEPARENT_RE.match(incoming or "")
    trace_id = match.group(1) if match and match.group(1) != "0" * 32 else secrets.token_hex(16)
    flags = match.group(3) if match else "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def current_request_id() -> str | None:
    """The request id of the request being served, if any."""
    return request_id_var.get()
