"""``create_kassa_app``: the one way every Kassa app is assembled.

Each app's ``create_app()`` describes itself with an :class:`AppSpec` (its settings, routers,
migrations, idempotency table, extra lifespan work) and this factory adds what every app has:
the lifespan that builds the database, HTTP client and Redis; problem+json errors; the
observability middleware; caller verification for services; health, readiness and metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI
from redis.asyncio import Redis
from sqlalchemy import Table
from starlette.types import ASGIApp

from shared.db import Database
from shared.errors import install_error_handlers
from shared.health import health_router
from shared.http_client import HttpClient
from shared.idempotency import IdempotencyRepository
from shared.identity import AssertionVerifier, load_public_keys
from shared.logging import configure_logging, get_logger
from shared.middleware import QUIET_PATHS, CallerIdentityMiddleware, ObservabilityMiddleware
from shared.migrations import Migrations
from shared.runtime import Lifecycle, Runtime
from shared.settings import KassaSettings

log = get_logger(__name__)

LifespanExtension = Callable[[FastAPI, Runtime], AbstractAsyncContextManager[None]]
MiddlewareFactory = Callable[[ASGIApp], ASGIApp]


@dataclass(frozen=True)
class AppSpec:
    """What makes one app itself."""

    settings: KassaSettings
    title: str
    description: str
    routers: Sequence[APIRouter] = ()
    migrations: Migrations | None = None
    idempotency_table: Table | None = None
    # Services verify the gateway's caller assertion; the gateway itself authenticates keys.
    verify_callers: bool = True
    # Exact paths served without a caller assertion besides health, readiness and metrics: a
    # provider's webhook that reaches the service through the gateway's public routes (no API
    # key, so no assertion) and proves itself with its own signature, checked by its route.
    public_paths: Sequence[str] = ()
    lifespan_extension: LifespanExtension | None = None
    # Innermost first: wrapped around the router, inside identity and observability.
    middleware: Sequence[MiddlewareFactory] = field(default_factory=tuple)
    version: str = "0.1.0"
    # None turns FastAPI's own document off (the gateway serves a merged one instead).
    openapi_url: str | None = "/openapi.json"
    docs_url: str | None = "/docs"


def _build_runtime(spec: AppSpec, lifecycle: Lifecycle) -> Runtime:
    settings = spec.settings
    database = Database(
        settings.database_url,
        app_name=settings.app_name,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_s=settings.db_pool_timeout_s,
        pre_ping=settings.db_pool_pre_ping,
    )
    redis: Redis | None = None
    if settings.redis_url:
        redis = Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
        )
    return Runtime(
        settings=settings,
        database=database,
        http=HttpClient(app_name=settings.app_name),
        lifecycle=lifecycle,
        migrations=spec.migrations,
        expected_revision=spec.migrations.head() if spec.migrations else None,
        redis=redis,
        idempotency=(
            IdempotencyRepository(spec.idempotency_table, retention=timedelta(hours=24))
            if spec.idempotency_table is not None
            else None
        ),
    )


def _lifespan(spec: AppSpec, lifecycle: Lifecycle) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        settings = spec.settings
        configure_logging(settings.app_name, settings.log_level, settings.log_json)
        runtime = _build_runtime(spec, lifecycle)
        app.state.runtime = runtime
        log.info("app_starting", env=settings.env.value, port=settings.port)
        try:
            if spec.lifespan_extension is None:
                yield {"runtime": runtime}
            else:
                async with spec.lifespan_extension(app, runtime):
                    yield {"runtime": runtime}
        finally:
            await runtime.http.aclose()
            if runtime.redis is not None:
                await runtime.redis.aclose()
            await runtime.database.dispose()
            log.info("app_stopped")

    return lifespan


def create_kassa_app(spec: AppSpec) -> FastAPI:
    """Assemble an app from its spec (see the module doc)."""
    lifecycle = Lifecycle()
    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version=spec.version,
        lifespan=_lifespan(spec, lifecycle),
        openapi_url=spec.openapi_url,
        docs_url=spec.docs_url,
        redoc_url=None,
    )
    app.state.lifecycle = lifecycle
    app.state.settings = spec.settings
    install_error_handlers(app)
    app.include_router(health_router)
    for router in spec.routers:
        app.include_router(router)
    for factory in spec.middleware:
        app.add_middleware(_FactoryMiddleware, factory=factory)
    if spec.verify_callers:
        verifier = AssertionVerifier(
            load_public_keys(spec.settings.identity_public_keys), audience=spec.settings.app_name
        )
        app.add_middleware(
            CallerIdentityMiddleware,
            verifier=verifier,
            open_paths=QUIET_PATHS | frozenset(spec.public_paths),
        )
    app.add_middleware(ObservabilityMiddleware, app_name=spec.settings.app_name)
    return app


class _FactoryMiddleware:
    """Adapts ``factory(app) -> app`` to Starlette's ``add_middleware``."""

    def __init__(self, app: ASGIApp, factory: MiddlewareFactory) -> None:
        self._wrapped = factory(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._wrapped(scope, receive, send)
