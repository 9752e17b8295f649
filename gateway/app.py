"""The gateway app: ``create_app()`` for uvicorn, ``load_settings()`` and ``MIGRATIONS``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.admin import admin_router
from gateway.authentication import Authenticator
from gateway.breaker import CircuitBreaker
from gateway.config import GatewaySettings
from gateway.cors import GatewayCors
from gateway.key_cache import KeyCache
from gateway.models import idempotency_keys
from gateway.openapi import MergedOpenApi, openapi_router
from gateway.proxy import GatewayProxy, GatewayState, QuotaBook, Upstream
from gateway.rate_limit import Quota, RateLimiter
from gateway.routes import ClientAddress, RouteClass, RoutingTable
from gateway.service import api_key_secret, api_key_service
from gateway.usage import UsageRecorder
from shared.app_factory import AppSpec, LifespanExtension, create_kassa_app
from shared.identity import ASSERTION_HEADER, AssertionSigner, Caller
from shared.migrations import Migrations
from shared.runtime import ReadinessReport, Runtime
from shared.topology import SERVICES

MIGRATIONS = Migrations(app_name="gateway", package="gateway")


def load_settings() -> GatewaySettings:
    """Settings from the environment."""
    return GatewaySettings()


def _required_secret(value: object, name: str) -> str:
    secret = getattr(value, "get_secret_value", lambda: None)()
    if not secret:
        raise RuntimeError(f"{name} is required (make run generates one for development)")
    return str(secret)


def _hot_path_redis(settings: GatewaySettings) -> Redis | None:
    """A Redis client that fails fast: the rate limiter's fail mode beats a slow answer."""
    if not settings.redis_url:
        return None
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


def _upstreams(settings: GatewaySettings) -> dict[str, Upstream]:
    audiences = {entry.gateway_prefix: entry.name for entry in SERVICES if entry.gateway_prefix}
    upstreams: dict[str, Upstream] = {}
    for name, base_url in settings.upstreams.items():
        policy = settings.policy_for(name)
        upstreams[name] = Upstream(
            name=name,
            base_url=base_url,
            audience=audiences.get(name, name),
            policy=policy,
            timeout=aiohttp.ClientTimeout(
                total=policy.timeout_s,
                sock_connect=policy.connect_timeout_s,
                sock_read=policy.timeout_s,
            ),
            breaker=CircuitBreaker(name, policy.breaker_failures, policy.breaker_cooldown_s),
        )
    return upstreams


def _quota_book(settings: GatewaySettings) -> QuotaBook:
    base = {
        RouteClass.PUBLIC: settings.public_rate_limit,
        RouteClass.AUTH: settings.auth_rate_limit,
        RouteClass.VERIFY: settings.verify_rate_limit,
    }
    return QuotaBook(
        {
            route_class: Quota(route_class.value, quota.limit, quota.window_s)
            for route_class, quota in base.items()
        },
        dict(settings.rate_limit_tiers),
    )


def _upstream_report(state: GatewayState) -> ReadinessReport:
    """Each upstream's own /ready and its circuit, reported without gating the gateway."""

    async def probe(upstream: Upstream) -> dict[str, str]:
        try:
            async with state.session.get(
                upstream.base_url + "/ready", timeout=aiohttp.ClientTimeout(total=1.5)
            ) as reply:
                status = "ok" if reply.status == 200 else f"error: /ready answered {reply.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = f"error: unreachable ({type(exc).__name__})"
        return {"status": status, "circuit": upstream.breaker.state.name.lower()}

    async def report() -> dict[str, Any]:
        upstreams = list(state.upstreams.values())
        results = await asyncio.gather(*(probe(upstream) for upstream in upstreams))
        return {upstream.name: result for upstream, result in zip(upstreams, results, strict=True)}

    return report


def _merged_openapi(app: FastAPI, state: GatewayState, settings: GatewaySettings) -> MergedOpenApi:
    """The document of every service, fetched with the gateway's own assertion."""
    gateway_caller = Caller(key_id="gateway", owner="gateway", service="gateway")

    async def fetch(name: str) -> dict[str, Any]:
        upstream = state.upstreams[name]
        headers = {ASSERTION_HEADER: state.signer.sign_reusable(gateway_caller, upstream.audience)}
        async with state.session.get(upstream.base_url + "/openapi.json", headers=headers) as reply:
            reply.raise_for_status()
            document: dict[str, Any] = await reply.json()
            return document

    def own() -> dict[str, Any]:
        return get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )

    return MergedOpenApi(
        own=own,
        upstreams=sorted(state.upstreams),
        fetch=fetch,
        public_routes=settings.public_routes,
        title="Kassa API",
        version=app.version,
    )


def _lifespan(settings: GatewaySettings) -> LifespanExtension:
    @asynccontextmanager
    async def gateway_lifespan(app: FastAPI, runtime: Runtime) -> AsyncIterator[None]:
        signer = AssertionSigner(
            _required_secret(settings.identity_signing_key, "GATEWAY_IDENTITY_SIGNING_KEY"),
            ttl_s=settings.identity_ttl_s,
        )
        secret = api_key_secret(settings)
        if settings.bootstrap_admin_key is not None:
            async with runtime.database.session() as session, session.begin():
                await api_key_service.ensure_bootstrap_key(
                    session, settings.bootstrap_admin_key.get_secret_value(), secret
                )
        redis = _hot_path_redis(settings)
        key_cache = KeyCache(ttl_s=settings.key_cache_ttl_s, redis=redis, subscriber=runtime.redis)
        sessions = runtime.database.sessionmaker
        usage = UsageRecorder(sessions, settings.last_used_flush_s)
        fail_closed = frozenset(
            name for name, mode in settings.rate_limit_fail_modes.items() if mode == "closed"
        )
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as upstream:
            state = GatewayState(
                signer=signer,
                session=upstream,
                authenticator=Authenticator(secret, key_cache, sessions),
                key_cache=key_cache,
                routes=RoutingTable(
                    settings.upstreams, settings.public_routes, settings.route_rules
                ),
                upstreams=_upstreams(settings),
                limiter=RateLimiter(redis, fail_closed),
                quotas=_quota_book(settings),
                client_address=ClientAddress(settings.trusted_proxies),
                usage=usage,
                max_body_bytes=settings.max_body_bytes,
            )
            app.state.gateway = state
            app.state.openapi = _merged_openapi(app, state, settings)
            runtime.readiness_reports["upstreams"] = _upstream_report(state)
            tasks = [asyncio.create_task(key_cache.listen()), asyncio.create_task(usage.run())]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if redis is not None:
                    await redis.aclose()

    return gateway_lifespan


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway."""
    settings = settings or load_settings()
    return create_kassa_app(
        AppSpec(
            settings=settings,
            title="Kassa gateway",
            description=(
                "The front door of Kassa: API keys, routing to the services with a signed "
                "caller identity. Services are reached at /v1/<service>/…"
            ),
            migrations=MIGRATIONS,
            idempotency_table=idempotency_keys,
            verify_callers=False,
            lifespan_extension=_lifespan(settings),
            routers=(
                admin_router,
                openapi_router(lambda request: request.app.state.openapi),
            ),
            openapi_url=None,
            docs_url=None,
            # Innermost first: CORS wraps the proxy so refusals (401, 429) are readable too.
            middleware=(
                GatewayProxy,
                lambda app: GatewayCors(app, settings.allowed_origins, settings.cors_max_age_s),
            ),
        )
    )
