"""Fault injection and the request log, as one pure ASGI layer in front of the TrovoTech API.

For each API request the fault dice are rolled once (:meth:`FaultState.plan`), then, in order:
added latency; a "timeout" (a sleep past the client's timeout, after which the request is
processed anyway, as by a slow server, so a retry without an idempotency key does it twice);
and an injected 5xx, either instead of the operation or after it took effect (the reply is
discarded). Applied faults are named in ``X-TrovoTech-Sandbox-Fault``. Every API request is
recorded (method, path, status, request id, idempotency key, faults) for ``/sandbox/requests``.

Faults come before the idempotency check on purpose: a retry that arrives while a timed-out
first attempt still sleeps claims the key first, and the sleeper then replays its reply.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandboxes.trovotech.errors import TrovoTechError
from sandboxes.trovotech.faults import FaultPlan
from sandboxes.trovotech.idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER
from sandboxes.trovotech.schemas import RequestRecordRead

if TYPE_CHECKING:
    from sandboxes.trovotech.sandbox import Sandbox

FAULT_HEADER = "X-TrovoTech-Sandbox-Fault"
# Paths that are the sandbox's own, never the TrovoTech API: no faults, not logged.
NON_API_PREFIXES = ("/sandbox", "/health", "/ready", "/metrics", "/docs", "/openapi.json")
MAX_RECORDS = 20_000


def is_api_path(path: str) -> bool:
    """Whether ``path`` belongs to the TrovoTech API (at / or /v1)."""
    return not path.startswith(NON_API_PREFIXES)


class RequestLog:
    """The newest API requests, oldest first."""

    def __init__(self) -> None:
        self.records: deque[RequestRecordRead] = deque(maxlen=MAX_RECORDS)

    def add(self, record: RequestRecordRead) -> None:
        """Keep one request."""
        self.records.append(record)

    def clear(self) -> None:
        """Forget every request."""
        self.records.clear()


def _injected_error(plan: FaultPlan) -> TrovoTechError:
    return TrovoTechError(
        plan.error_status,
        "error-service-unavailable" if plan.error_status == 503 else "error-internal",
        "Temporary failure, please retry (sandbox fault injection).",
        headers={FAULT_HEADER: ",".join(plan.names)},
    )


async def _buffered(receive: Receive) -> Receive:
    body = b""
    message = await receive()
    while message["type"] == "http.request" and message.get("more_body"):
        body += message.get("body", b"")
        message = await receive()
    first: Message = (
        {"type": "http.request", "body": body + message.get("body", b""), "more_body": False}
        if message["type"] == "http.request"
        else message  # the client left before sending its body
    )
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()  # after the body: the disconnect, when it comes
        delivered = True
        return first

    return replay


class FaultMiddleware:
    """Applies the fault plan to each TrovoTech API request and records the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope.get("app")  # the FastAPI app, set by Starlette before any middleware
        sandbox: Sandbox | None = app.state.sandbox if app is not None else None
        if scope["type"] != "http" or sandbox is None or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        at = datetime.now(UTC)
        started = time.perf_counter()
        plan = sandbox.faults.plan(scope["path"])
        reply_status = 500
        replayed = False

        async def send_marked(message: Message) -> None:
            nonlocal reply_status, replayed
            if message["type"] == "http.response.start":
                reply_status = message["status"]
                headers = Headers(raw=message.get("headers", []))
                replayed = headers.get(REPLAYED_HEADER) == "true"
                if plan.names:
                    marker = (FAULT_HEADER.lower().encode(), ",".join(plan.names).encode())
                    message["headers"] = [*message.get("headers", []), marker]
            await send(message)

        async def discard(message: Message) -> None:
            nonlocal replayed
            if message["type"] == "http.response.start":
                replayed = Headers(raw=message.get("headers", [])).get(REPLAYED_HEADER) == "true"

        # Read the request before any sleep: once the client gives up, the server would no
        # longer hand the body over, and a slow server has the request already.
        receive = await _buffered(receive)
        try:
            if plan.latency_s:
                await asyncio.sleep(plan.latency_s)
            if plan.timeout_s is not None:
                await asyncio.sleep(plan.timeout_s)
            if plan.error_after_effect:
                await self.app(scope, receive, discard)
            if plan.error:
                reply_status = plan.error_status
                await _injected_error(plan).response()(scope, receive, send)
            else:
                await self.app(scope, receive, send_marked)
        finally:
            self._record(sandbox, scope, plan, reply_status, replayed, at, started)

    @staticmethod
    def _record(
        sandbox: Sandbox,
        scope: Scope,
        plan: FaultPlan,
        status: int,
        replayed: bool,
        at: datetime,
        started: float,
    ) -> None:
        headers = Headers(scope=scope)
        sandbox.requests.add(
            RequestRecordRead(
                method=scope["method"],
                path=scope["path"],
                status=status,
                request_id=headers.get("x-request-id"),
                idempotency_key=headers.get(IDEMPOTENCY_HEADER),
                replayed=replayed,
                faults=plan.names,
                at=at,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        )
