"""The gateway's hot path: authenticate, authorise, rate limit, relay, as lean ASGI.

FastAPI routing and dependency injection cost more than the whole proxy hop (measured in
``../shared/specs/gateway.md``), so proxied requests never reach the router. Per request the
work is: the routing table lookup, an HMAC of the key and a dict hit in the key cache, one
Redis round trip for the rate limit, a reused signed assertion, and the exchange with the
upstream over a pooled aiohttp session (httpx's pool collapses under concurrency). The
gateway's own API under ``/v1/admin/`` is authenticated and limited here too, then served by
FastAPI; everything else (health, docs) falls through untouched.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.authentication import (
    Authenticator,
    authorise,
    presented_key,
    refuse_key_in_query,
)
from gateway.breaker import CircuitBreaker
from gateway.config import UpstreamPolicy
from gateway.key_cache import KeyCache, Principal
from gateway.rate_limit import Decision, Quota, RateLimiter
from gateway.routes import ADMIN_UPSTREAM, ClientAddress, Route, RouteClass, RoutingTable
from gateway.usage import UsageRecorder
from shared.context import child_traceparent, traceparent_var
from shared.errors import KassaError, render_kassa_error
from shared.identity import ASSERTION_HEADER, AssertionSigner
from shared.logging import get_logger
from shared.middleware import ROUTE_TEMPLATE_KEY

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
NOT_RETURNED = HOP_BY_HOP | {"x-request-id", "server", "date"}
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})
RETRY_BASE_DELAY_S = 0.05

GATEWAY_REQUESTS = Histogram(
    "kassa_gateway_request_duration_seconds",
    "Proxied requests by route class, upstream and status class, with their latency.",
    ["route_class", "upstream", "status_class"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPSTREAM_ERRORS = Counter(
    "kassa_gateway_upstream_errors_total",
    "Failed upstream exchanges by upstream and kind.",
    ["upstream", "kind"],
)
UPSTREAM_RETRIES = Counter(
    "kassa_gateway_upstream_retries_total", "Upstream attempts repeated.", ["upstream"]
)


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


@dataclass(frozen=True)
class Upstream:
    """One service the gateway relays to."""

    name: str
    base_url: str
    audience: str  # the app name its assertions are addressed to ("ledger" -> "ledger_fee")
    policy: UpstreamPolicy
    timeout: aiohttp.ClientTimeout
    breaker: CircuitBreaker


class QuotaBook:
    """The quota of a route class for a key's tier (a factor of 0 means unlimited)."""

    def __init__(self, base: dict[RouteClass, Quota], tiers: dict[str, float]) -> None:
        self._base = base
        self._tiers = tiers
        self._cache: dict[tuple[RouteClass, str], Quota | None] = {}

    def quota(self, route_class: RouteClass, tier: str) -> Quota | None:
        cached = self._cache.get((route_class, tier), ...)
        if cached is not ...:
            return cached
        base = self._base[route_class]
        factor = self._tiers.get(tier, self._tiers.get("default", 1.0))
        quota = (
            None
            if factor == 0
            else Quota(
                name=f"{route_class.value}-{tier}" if tier != "default" else route_class.value,
                limit=max(1, round(base.limit * factor)),
                window_s=base.window_s,
            )
        )
        self._cache[(route_class, tier)] = quota
        return quota


@dataclass
class GatewayState:
    """What the hot path needs at run time; built in the gateway's lifespan."""

    signer: AssertionSigner
    session: aiohttp.ClientSession
    authenticator: Authenticator
    key_cache: KeyCache
    routes: RoutingTable
    upstreams: dict[str, Upstream]
    limiter: RateLimiter
    quotas: QuotaBook
    client_address: ClientAddress
    usage: UsageRecorder
    max_body_bytes: int


class GatewayProxy:
    """The front door for ``/v1/...`` and the public routes; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: GatewayState | None = getattr(scope["app"].state, "gateway", None)
        route = state.routes.resolve(scope["method"], scope["path"]) if state else None
        if route is None or state is None:
            await self.app(scope, receive, send)
            return
        scope[ROUTE_TEMPLATE_KEY] = route.template
        started = time.perf_counter()
        exchange = _Exchange(scope, send)
        try:
            await self._handle(state, route, scope, receive, exchange)
        except KassaError as error:
            if exchange.started:
                raise
            response = render_kassa_error(error, instance=scope["path"])
            await response(scope, receive, exchange.send)
        finally:
            GATEWAY_REQUESTS.labels(
                route.route_class.value, route.upstream, f"{exchange.status // 100}xx"
            ).observe(time.perf_counter() - started)

    async def _handle(
        self,
        state: GatewayState,
        route: Route,
        scope: Scope,
        receive: Receive,
        exchange: _Exchange,
    ) -> None:
        refuse_key_in_query(scope.get("query_string", b""))
        headers = _header_dict(scope)
        principal = await _principal(state, route, headers)
        await _limit(state, route, scope, headers, principal, exchange)
        request_id = scope.get("state", {}).get("request_id")
        if principal is not None:
            scope.setdefault("state", {})["caller"] = principal.caller(request_id)
        if route.upstream == ADMIN_UPSTREAM:
            await self.app(scope, receive, exchange.send)
            return
        body = await _read_body(receive, state.max_body_bytes)
        await _relay(state, route, scope, headers, principal, body, exchange)


class _Exchange:
    """The client's side of one request: its send, the status sent, headers to add."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self._scope = scope
        self._send = send
        self.status = 500
        self.started = False
        self.extra_headers: list[tuple[bytes, bytes]] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            if self.extra_headers:
                message["headers"] = [*message.get("headers", []), *self.extra_headers]
        await self._send(message)


def _header_dict(scope: Scope) -> dict[str, str]:
    # The last value wins for repeated headers, as the proxy forwards one value per name.
    return {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
    }


async def _principal(
    state: GatewayState, route: Route, headers: dict[str, str]
) -> Principal | None:
    if route.public:
        return None
    principal = await state.authenticator.authenticate(presented_key(headers))
    authorise(principal, route.scopes, route.callers)
    state.usage.record(principal.key_id, time.time())
    return principal


async def _limit(
    state: GatewayState,
    route: Route,
    scope: Scope,
    headers: dict[str, str],
    principal: Principal | None,
    exchange: _Exchange,
) -> None:
    if principal is None:
        client = scope.get("client")
        identity = "ip:" + state.client_address.of(
            client[0] if client else None, headers.get("x-forwarded-for")
        )
        quota = state.quotas.quota(route.route_class, "default")
    else:
        identity = "key:" + principal.key_id
        quota = state.quotas.quota(route.route_class, principal.tier)
    if quota is None:
        return
    decision: Decision = await state.limiter.check(route.route_class.value, identity, quota)
    if not decision.allowed:
        raise decision.refusal()
    exchange.extra_headers.extend(decision.headers())


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
    scope: Scope,
    headers: dict[str, str],
    state: GatewayState,
    upstream: Upstream,
    principal: Principal | None,
) -> dict[str, str]:
    forwarded = {name: value for name, value in headers.items() if name not in NOT_FORWARDED}
    forwarded["x-request-id"] = scope.get("state", {}).get("request_id", "")
    forwarded["traceparent"] = child_traceparent(traceparent_var.get())
    if principal is not None:
        forwarded[ASSERTION_HEADER] = state.signer.sign_reusable(
            principal.caller(None), audience=upstream.audience
        )
    client = scope.get("client")
    if client:
        prior = headers.get("x-forwarded-for")
        forwarded["x-forwarded-for"] = f"{prior}, {client[0]}" if prior else client[0]
    forwarded["x-forwarded-proto"] = scope.get("scheme", "http")
    host = headers.get("host")
    if host:
        forwarded["x-forwarded-host"] = host
    return forwarded


def _retryable(scope: Scope, headers: dict[str, str]) -> bool:
    return scope["method"] in IDEMPOTENT_METHODS or "idempotency-key" in headers


async def _relay(
    state: GatewayState,
    route: Route,
    scope: Scope,
    headers: dict[str, str],
    principal: Principal | None,
    body: bytes,
    exchange: _Exchange,
) -> None:
    upstream = state.upstreams[route.upstream]
    url = upstream.base_url + route.upstream_path
    if scope.get("query_string"):
        url += "?" + scope["query_string"].decode("latin-1")
    request: dict[str, Any] = {
        "method": scope["method"],
        "url": url,
        "data": body or None,
        "headers": _upstream_headers(scope, headers, state, upstream, principal),
        "timeout": upstream.timeout,
        "allow_redirects": False,
        "auto_decompress": False,
    }
    attempts = 1 + (upstream.policy.retries if _retryable(scope, headers) else 0)
    for attempt in range(1, attempts + 1):
        upstream.breaker.admit()
        last = attempt == attempts
        response = await _attempt(state, upstream, request, last)
        if response is None:
            await _backoff(upstream, attempt)
            continue
        try:
            if response.status in RETRYABLE_STATUSES:
                upstream.breaker.record_failure()
                UPSTREAM_ERRORS.labels(upstream.name, f"status_{response.status}").inc()
                if not last:
                    await _backoff(upstream, attempt)
                    continue
            else:
                upstream.breaker.record_success()
            await _stream_back(upstream, response, exchange)
            return
        finally:
            response.release()


async def _attempt(
    state: GatewayState, upstream: Upstream, request: dict[str, Any], last: bool
) -> aiohttp.ClientResponse | None:
    """The upstream's response; ``None`` when the attempt failed and may be repeated."""
    try:
        return await state.session.request(**request)
    except aiohttp.ConnectionTimeoutError as exc:
        _failed(upstream, "connect_timeout", exc, last, GatewayTimeout, "did not accept")
        return None
    except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
        _failed(upstream, "unreachable", exc, last, BadGateway, "could not be reached")
        return None
    except TimeoutError as exc:
        # The request may have been acted on: never repeated, whatever the method.
        _failed(upstream, "timeout", exc, True, GatewayTimeout, "did not answer in time")
    except aiohttp.ClientError as exc:
        _failed(upstream, "protocol", exc, True, BadGateway, "answered with a broken reply")
    raise AssertionError("unreachable")  # pragma: no cover - _failed raises when last


def _failed(
    upstream: Upstream,
    kind: str,
    exc: BaseException,
    last: bool,
    error: type[KassaError],
    what: str,
) -> None:
    upstream.breaker.record_failure()
    UPSTREAM_ERRORS.labels(upstream.name, kind).inc()
    log.warning("upstream_failed", upstream=upstream.name, kind=kind, error=str(exc) or kind)
    if last:
        raise error(f"The {upstream.name} service {what}.") from exc


async def _backoff(upstream: Upstream, attempt: int) -> None:
    UPSTREAM_RETRIES.labels(upstream.name).inc()
    # Full jitter: replicas retrying together must not hit a recovering service in lockstep.
    await asyncio.sleep(random.uniform(0, RETRY_BASE_DELAY_S * 2 ** (attempt - 1)))


async def _stream_back(
    upstream: Upstream, response: aiohttp.ClientResponse, exchange: _Exchange
) -> None:
    await exchange.send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [
                (name.lower(), value)
                for name, value in response.raw_headers
                if name.decode("latin-1").lower() not in NOT_RETURNED
            ],
        }
    )
    try:
        async for chunk in response.content.iter_any():
            await exchange.send({"type": "http.response.body", "body": chunk, "more_body": True})
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Too late for a problem reply: returning without finishing makes the server drop
        # the connection, so the client sees a truncated reply rather than a wrong one.
        UPSTREAM_ERRORS.labels(upstream.name, "broken_stream").inc()
        log.warning("upstream_stream_broken", upstream=upstream.name, error=str(exc))
        return
    await exchange.send({"type": "http.response.body", "body": b"", "more_body": False})
