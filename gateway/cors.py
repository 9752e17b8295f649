"""CORS for browsers calling the API: an explicit allow-list, answered at the gateway.

Starlette's middleware does the header arithmetic; two things are made stricter here. A
disallowed preflight is a 403 problem+json naming what was refused (origin, method or header)
instead of a plain-text 400, and a reply to a disallowed origin carries no CORS header at all
(Starlette adds ``Access-Control-Allow-Credentials`` and the exposed headers to every reply
that has an ``Origin``), so credentials are only ever offered to listed origins.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Send

from shared.errors import Forbidden, render_kassa_error

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-API-Key",
    "Idempotency-Key",
    "X-Request-ID",
    "traceparent",
    "PAYMENT-SIGNATURE",
    "X-PAYMENT",
)
EXPOSED_HEADERS = (
    "RateLimit-Policy",
    "RateLimit",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
    "Idempotent-Replayed",
    "PAYMENT-REQUIRED",
    "PAYMENT-RESPONSE",
    "X-PAYMENT-RESPONSE",
)


class CorsRefused(Forbidden):
    slug = "cors-refused"
    title = "Cross-origin request not allowed"


class GatewayCors(CORSMiddleware):
    """Starlette's CORS with problem+json refusals and no headers for unlisted origins."""

    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str], max_age_s: int) -> None:
        super().__init__(
            app,
            allow_origins=list(allowed_origins),
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            # A wildcard (development only; production refuses it) never gets credentials.
            allow_credentials="*" not in allowed_origins,
            expose_headers=EXPOSED_HEADERS,
            max_age=max_age_s,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        origin = request_headers["origin"]
        problem = render_kassa_error(
            CorsRefused(
                f"Preflight from origin '{origin}' refused ({refused}). Allowed origins are set "
                "in ALLOWED_ORIGINS; allowed methods: "
                f"{', '.join(ALLOWED_METHODS)}; allowed headers: {', '.join(ALLOWED_HEADERS)}.",
                refused=refused.split(", "),
            )
        )
        problem.headers["Vary"] = "Origin"
        return problem

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if (
            message["type"] != "http.response.start"
            or origin is None
            or self.is_allowed_origin(origin)
        ):
            await super().send(message, send, request_headers)
            return
        headers = MutableHeaders(scope=message)
        headers["Vary"] = ", ".join([*headers.getlist("Vary"), "Origin"])
        await send(message)
