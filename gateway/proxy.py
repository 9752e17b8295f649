"""The gateway's hot path: ``/v1/<service>/<path>`` to the service, as lean ASGI.

FastAPI routing and dependency injection cost more than the whole proxy hop (measured in
``../shared/specs/gateway.md``), so proxied requests never reach the router: this middleware
authenticates the key, signs the caller assertion and relays the exchange with an aiohttp
session (httpx's pool collapses under concurrency). Everything else (health, admin, docs)
falls through to FastAPI.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.authentication import Authenticator, presented_key, refuse_key_in_query
from gateway.key_cache import KeyCache
from shared.context import child_traceparent, traceparent_var
from shared.errors import KassaError, render_kassa_error
from shared.identity import ASSERTION_HEADER, AssertionSigner, Caller
from shared.logging import get_logger
from shared.middleware import ROUTE_TEMPLATE_KEY
from shared.runtime import Runtime

log = get_logger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded: credentials (the upstream gets the assertion instead), a client's attempt to
# forge an assertion, and headers the gateway sets itself.
NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "authorization",
    "x-api-key",
    "content-length",
    ASSERTION_HEADER,
    "x-request-id",
    "traceparent",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
}


# The gateway's own API under /v1/admin/: authenticated here, served by FastAPI.
ADMIN = "admin"


class PayloadTooLarge(KassaError):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class BadGateway(KassaError):
    status = 502
    slug = "upstream-unreachable"
    title = "Upstream service unreachable"


class GatewayTimeout(KassaError):
    status = 504
    slug = "upstream-timeout"
    title = "Upstream service timed out"


@dataclass
class GatewayState:
    """What the proxy needs at run time; built in the gateway's lifespan."""

    runtime: Runtime
    signer: AssertionSigner
    session: aiohttp.ClientSession
    authenticator: Authenticator
    key_cache: KeyCache
    upstreams: dict[str, str]
    public_routes: dict[str, str]
    max_body_bytes: int
    timeout: aiohttp.ClientTimeout
    # Upstream name -> the app name its assertions are addressed to ("ledger" -> "ledger_fee").
    audiences: dict[str, str]


class GatewayProxy:
    """Relays ``/v1/<name>/...`` and the public routes; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: GatewayState | None = getattr(scope["app"].state, "gateway", None)
        target = self._match(scope["path"], state) if state is not None else None
        if target is None or state is None:
            await self.app(scope, receive, send)
            return
        name, upstream_path, public = target
        if name == ADMIN:
            try:
                await self._authenticate(scope, state, public=False)
            except KassaError as error:
                await render_kassa_error(error, instance=scope["path"])(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        scope[ROUTE_TEMPLATE_KEY] = scope["path"] if public else f"/v1/{name}/{{path}}"
        try:
            caller = await self._authenticate(scope, state, public)
            body = await _read_body(receive, state.max_body_bytes)
            await self._relay(scope, send, state, name, upstream_path, caller, body)
        except KassaError as error:
            await render_kassa_error(error, instance=scope["path"])(scope, receive, send)

    @staticmethod
    def _match(path: str, state: GatewayState) -> tuple[str, str, bool] | None:
        public_upstream = state.public_routes.get(path)
        if public_upstream is not None:
            return public_upstream, path, True
        if not path.startswith("/v1/"):
            return None
        name, _, rest = path[4:].partition("/")
        if name == ADMIN:
            return name, path, False
        if name not in state.upstreams:
            return None
        return name, "/" + rest, False

    @staticmethod
    async def _authenticate(scope: Scope, state: GatewayState, public: bool) -> Caller:
        refuse_key_in_query(scope.get("query_string", b""))
        request_id = scope.get("state", {}).get("request_id")
        if public:
            return Caller(key_id="public", owner="public", request_id=request_id)
        principal = await state.authenticator.authenticate(presented_key(Headers(scope=scope)))
        caller = principal.caller(request_id)
        scope.setdefault("state", {})["caller"] = caller
        return caller

    async def _relay(
        self,
        scope: Scope,
        send: Send,
        state: GatewayState,
        name: str,
        upstream_path: str,
        caller: Caller,
        body: bytes,
    ) -> None:
        url = state.upstreams[name] + upstream_path
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = _upstream_headers(scope, state, name, caller)
        try:
            async with state.session.request(
                scope["method"],
                url,
                data=body or None,
                headers=headers,
                timeout=state.timeout,
                allow_redirects=False,
                auto_decompress=False,
            ) as upstream:
                await send(
                    {
                        "type": "http.response.start",
                        "status": upstream.status,
                        "headers": _downstream_headers(upstream),
                    }
                )
                async for chunk in _chunks(upstream):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
            log.warning("upstream_unreachable", upstream=name, error=str(exc))
            raise BadGateway(f"The {name} service could not be reached.") from exc
        except TimeoutError as exc:
            log.warning("upstream_timeout", upstream=name)
            raise GatewayTimeout(f"The {name} service did not answer in time.") from exc


async def _chunks(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in upstream.content.iter_any():
        yield chunk


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _upstream_headers(
    scope: Scope, state: GatewayState, name: str, caller: Caller
) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        header = raw_name.decode("latin-1").lower()
        if header not in NOT_FORWARDED:
            headers[header] = raw_value.decode("latin-1")
    request_id = scope.get("state", {}).get("request_id", "")
    headers["x-request-id"] = request_id
    headers["traceparent"] = child_traceparent(traceparent_var.get())
    headers[ASSERTION_HEADER] = state.signer.sign(caller, audience=state.audiences.get(name, name))
    client = scope.get("client")
    if client:
        headers["x-forwarded-for"] = client[0]
    headers["x-forwarded-proto"] = scope.get("scheme", "http")
    host = Headers(scope=scope).get("host")
    if host:
        headers["x-forwarded-host"] = host
    return headers


def _downstream_headers(upstream: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower(), value)
        for name, value in upstream.raw_headers
        if name.decode("latin-1").lower() not in HOP_BY_HOP | {"x-request-id", "server", "date"}
    ]
