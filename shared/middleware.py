"""Pure ASGI middleware shared by every app.

Pure ASGI (not ``BaseHTTPMiddleware``) because it sits on every request, the gateway's hot path
included: one layer that sets the request id and trace context, counts and times the request by
route template, writes one access-log line, and turns an unexpected exception into a 500
problem+json carrying the request id.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    request_id_var,
    traceparent_var,
)
from shared.errors import KassaError, internal_error_response, render_kassa_error
from shared.identity import ASSERTION_HEADER, AssertionVerifier
from shared.logging import get_logger
from shared.metrics import HTTP_IN_FLIGHT, HTTP_LATENCY, HTTP_REQUESTS, UNHANDLED_ERRORS

log = get_logger(__name__)

# Paths a probe or a scraper calls: counted, but logged only at debug level.
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
UNMATCHED_ROUTE = "<unmatched>"
# The route template for metrics when no FastAPI route matched (set by the gateway's proxy).
ROUTE_TEMPLATE_KEY = "kassa.route"


def route_template(scope: Scope) -> str:
    """The matched route's template, never the raw path (bounded label cardinality)."""
    template = scope.get(ROUTE_TEMPLATE_KEY)
    if isinstance(template, str):
        return template
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return scope.get("root_path", "") + path if scope.get("root_path") else path
    return UNMATCHED_ROUTE


class ObservabilityMiddleware:
    """Request id, trace context, metrics, access log and the last-resort 500."""

    def __init__(self, app: ASGIApp, app_name: str) -> None:
        self.app = app
        self.app_name = app_name
        self._in_flight = HTTP_IN_FLIGHT.labels(app=app_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = accept_request_id(headers.get(REQUEST_ID_HEADER))
        request_token = request_id_var.set(request_id)
        trace_token = traceparent_var.set(headers.get("traceparent"))
        scope.setdefault("state", {})["request_id"] = request_id
        raw_request_id = request_id.encode()
        status = 500
        started = False
        start = time.perf_counter()
        self._in_flight.inc()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [
                    *(
                        (k, v)
                        for k, v in message.get("headers", [])
                        if k.lower() != b"x-request-id"
                    ),
                    (b"x-request-id", raw_request_id),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            status = await self._answer_unhandled(exc, scope, started, send_with_request_id)
        finally:
            self._in_flight.dec()
            self._record(scope, status, time.perf_counter() - start)
            request_id_var.reset(request_token)
            traceparent_var.reset(trace_token)

    async def _answer_unhandled(
        self, exc: Exception, scope: Scope, started: bool, send: Send
    ) -> int:
        if isinstance(exc, KassaError):
            response = render_kassa_error(exc, instance=scope.get("path"))
        else:
            UNHANDLED_ERRORS.labels(app=self.app_name).inc()
            log.exception("unhandled_exception", path=scope.get("path"), error=type(exc).__name__)
            response = internal_error_response()
        if not started:
            await response(scope, _empty_receive, send)
        return response.status_code

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        method = scope.get("method", "")
        route = route_template(scope)
        status_text = str(status)
        HTTP_REQUESTS.labels(self.app_name, method, route, status_text).inc()
        HTTP_LATENCY.labels(self.app_name, method, route, status_text).observe(elapsed)
        path = scope.get("path", "")
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        }
        if path in QUIET_PATHS:
            log.debug("request_completed", **fields)
        else:
            log.info("request_completed", **fields)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


class CallerIdentityMiddleware:
    """Refuses every request without a valid gateway assertion, except the open paths."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: AssertionVerifier,
        open_paths: Iterable[str] = QUIET_PATHS,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        token = Headers(scope=scope).get(ASSERTION_HEADER)
        try:
            caller = self.verifier.verify(token)
        except KassaError as exc:
            log.info("caller_assertion_refused", path=scope["path"], reason=exc.detail)
            await render_kassa_error(exc, instance=scope["path"])(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if caller.request_id is None:  # reusable assertions leave it to X-Request-ID
            caller = dataclasses.replace(caller, request_id=state.get("request_id"))
        state["caller"] = caller
        await self.app(scope, receive, send)
