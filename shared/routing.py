"""The route class every Kassa router uses: one transaction per request, and idempotency keys.

The request's session commits after the handler returned a success and **before** the reply is
sent, so a client never sees a 2xx for data that failed to commit; any exception or error reply
rolls it back. POST routes honour ``Idempotency-Key`` (see :mod:`shared.idempotency`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import FieldError, KassaError, render_kassa_error
from shared.idempotency import (
    IDEMPOTENCY_HEADER,
    MAX_KEY_LENGTH,
    REPLAYED_HEADER,
    IdempotencyKeyInvalid,
    StoredReply,
    request_fingerprint,
)
from shared.identity import Caller
from shared.logging import get_logger
from shared.runtime import SESSION_STATE_KEY, get_runtime, get_session

log = get_logger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
AfterCommit = Callable[[], Awaitable[None]]
AFTER_COMMIT_STATE_KEY = "after_commit"

# Headers a replay recomputes rather than repeats.
_NOT_STORED_HEADERS = frozenset({"content-length", "x-request-id", "date", "server"})


def after_commit(request: Request, callback: AfterCommit) -> None:
    """Run ``callback`` once the request's transaction has committed (never on rollback).

    For effects outside the database that must not run ahead of the data they announce:
    invalidating a cache entry before the commit would let a concurrent reader re-cache the
    old row. A failing callback is logged; the data is committed and the reply stands.
    """
    request.scope.setdefault("state", {}).setdefault(AFTER_COMMIT_STATE_KEY, []).append(callback)


async def _run_after_commit(callbacks: list[AfterCommit]) -> None:
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            log.exception("after_commit_failed", callback=getattr(callback, "__qualname__", ""))


async def _finish_session(request: Request, commit: bool) -> None:
    state = request.scope.get("state", {})
    session: AsyncSession | None = state.pop(SESSION_STATE_KEY, None)
    callbacks: list[AfterCommit] = state.pop(AFTER_COMMIT_STATE_KEY, [])
    if session is not None:
        try:
            if commit:
                await session.commit()
            else:
                await session.rollback()
        finally:
            await session.close()
    if commit:
        await _run_after_commit(callbacks)


def _caller_namespace(request: Request) -> str:
    caller = request.scope.get("state", {}).get("caller")
    if isinstance(caller, Caller):
        return caller.owner or caller.key_id
    return "anonymous"


def _stored(response: Response) -> StoredReply | None:
    body = getattr(response, "body", None)
    if not isinstance(body, bytes | memoryview):
        return None  # a streaming reply cannot be replayed
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in response.raw_headers
        if name.decode("latin-1").lower() not in _NOT_STORED_HEADERS
    ]
    return StoredReply(status=response.status_code, headers=headers, body=bytes(body))


def _replayed(reply: StoredReply) -> Response:
    response = Response(content=reply.body, status_code=reply.status)
    for name, value in reply.headers:
        response.headers.append(name, value)
    response.headers[REPLAYED_HEADER] = "true"
    return response


class KassaRoute(APIRoute):
    """APIRoute with the transaction and idempotency rules described in the module doc."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        honours_keys = "POST" in (self.methods or ())

        async def route_handler(request: Request) -> Response:
            key = request.headers.get(IDEMPOTENCY_HEADER) if honours_keys else None
            if key is not None:
                return await _run_idempotently(request, key, handler)
            return await _run_in_transaction(request, handler)

        return route_handler


async def _run_in_transaction(request: Request, handler: Handler) -> Response:
    try:
        response = await handler(request)
    except BaseException:
        await _finish_session(request, commit=False)
        raise
    await _finish_session(request, commit=response.status_code < 400)
    return response


async def _run_idempotently(request: Request, key: str, handler: Handler) -> Response:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise IdempotencyKeyInvalid(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
            errors=[
                FieldError(
                    field="header.idempotency-key",
                    message=f"must be 1 to {MAX_KEY_LENGTH} printable characters",
                    type="value_error",
                )
            ],
        )
    runtime = get_runtime(request)
    store = runtime.idempotency
    if store is None:
        return await _run_in_transaction(request, handler)
    sessions = runtime.database.sessionmaker
    caller = _caller_namespace(request)
    fingerprint = request_fingerprint(
        request.method, request.url.path, request.url.query, await request.body()
    )
    claim = await store.claim(sessions, caller, key, fingerprint)
    if claim.replay is not None:
        return _replayed(claim.replay)
    try:
        response = await handler(request)
    except KassaError as refusal:
        await _finish_session(request, commit=False)
        reply = _stored(render_kassa_error(refusal, instance=request.url.path))
        if refusal.status < 500 and reply is not None:
            await store.complete_alone(sessions, caller, key, reply)
        else:
            await store.release(sessions, caller, key)
        raise
    except BaseException:
        await _finish_session(request, commit=False)
        await store.release(sessions, caller, key)
        raise
    reply = _stored(response)
    if reply is None or response.status_code >= 500:
        await _finish_session(request, commit=False)
        await store.release(sessions, caller, key)
        return response
    if response.status_code >= 400:
        await _finish_session(request, commit=False)
        await store.complete_alone(sessions, caller, key, reply)
        return response
    try:
        await store.complete(get_session(request), caller, key, reply)
        await _finish_session(request, commit=True)
    except BaseException:
        await _finish_session(request, commit=False)
        await store.release(sessions, caller, key)
        raise
    return response


def kassa_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes are :class:`KassaRoute`."""
    return APIRouter(route_class=KassaRoute, **kwargs)
