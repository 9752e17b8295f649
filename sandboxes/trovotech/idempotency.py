"""``Idempotency-Key`` on POSTs, kept in memory: same key, same result, one operation.

The same key with the same request replays the stored reply with ``Idempotent-Replayed: true``;
with a different request (method, path without ``/v1``, body) it is refused with 422; while the
first request is still running, 409. Only successful replies are kept: a refused request may be
retried with its key. Claims and completions are synchronous, so two concurrent requests on the
event loop cannot both claim one key. One sandbox serves one API key, so keys are not scoped
further.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from sandboxes.trovotech.errors import TrovoTechError, bad_request

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255

Reply = tuple[int, BaseModel]


@dataclass(frozen=True)
class StoredReply:
    """A reply as it was sent."""

    status_code: int
    body: bytes


@dataclass
class _Entry:
    fingerprint: str
    reply: StoredReply | None = None


class IdempotencyStore:
    """Keys to replies, in memory."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def claim(self, key: str, fingerprint: str) -> StoredReply | None:
        """``None`` when the caller now owns ``key``; the stored reply when it is a repeat."""
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(fingerprint)
            return None
        if entry.fingerprint != fingerprint:
            raise TrovoTechError(
                422,
                "error-idempotency-key-reused",
                "This Idempotency-Key was used with a different request.",
                data=IDEMPOTENCY_HEADER,
            )
        if entry.reply is None:
            raise TrovoTechError(
                409,
                "error-idempotency-key-in-use",
                "A request with this Idempotency-Key is still being processed.",
                data=IDEMPOTENCY_HEADER,
            )
        return entry.reply

    def complete(self, key: str, reply: StoredReply) -> None:
        """Keep ``reply`` for later repeats of ``key``."""
        self._entries[key].reply = reply

    def release(self, key: str) -> None:
        """Forget a claim whose request failed, so it can be retried."""
        self._entries.pop(key, None)


def _fingerprint(request: Request, body: bytes) -> str:
    # The same API is served at / and /v1: a retry may use either base URL.
    path = request.url.path.removeprefix("/v1")
    digest = hashlib.sha256(f"{request.method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _json_reply(status_code: int, body: bytes, replayed: bool) -> Response:
    headers = {REPLAYED_HEADER: "true"} if replayed else {}
    return Response(body, status_code, headers, media_type="application/json")


async def once(
    request: Request,
    store: IdempotencyStore,
    work: Callable[[], Awaitable[Reply]],
    key_required: bool = False,
) -> Response:
    """Run ``work`` once per ``Idempotency-Key`` (every time when the request has none)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if not key:
        if key_required:
            raise bad_request(
                "error-missing-idempotency-key",
                "POST requests need an Idempotency-Key header.",
                IDEMPOTENCY_HEADER,
            )
        status_code, model = await work()
        return _json_reply(status_code, model.model_dump_json().encode(), replayed=False)
    if len(key) > MAX_KEY_LENGTH:
        raise bad_request("error-invalid-idempotency-key", "Idempotency-Key is too long.")
    stored = store.claim(key, _fingerprint(request, await request.body()))
    if stored is not None:
        return _json_reply(stored.status_code, stored.body, replayed=True)
    try:
        status_code, model = await work()
    except BaseException:
        store.release(key)
        raise
    body = model.model_dump_json().encode()
    store.complete(key, StoredReply(status_code, body))
    return _json_reply(status_code, body, replayed=False)
