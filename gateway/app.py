"""The gateway app: ``create_app()`` for uvicorn, ``load_settings()`` and ``MIGRATIONS``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI

from gateway.authentication import Authenticator
from gateway.config import GatewaySettings
from gateway.key_cache import KeyCache
from gateway.models import idempotency_keys
from gateway.proxy import GatewayProxy, GatewayState
from gateway.service import api_key_service
from shared.app_factory import AppSpec, create_kassa_app
from shared.identity import AssertionSigner
from shared.migrations import Migrations
from shared.runtime import Runtime
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


def _lifespan(settings: GatewaySettings) -> object:
    @asynccontextmanager
    async def gateway_lifespan(app: FastAPI, runtime: Runtime) -> AsyncIterator[None]:
        signer = AssertionSigner(
            _required_secret(settings.identity_signing_key, "GATEWAY_IDENTITY_SIGNING_KEY"),
            ttl_s=settings.identity_ttl_s,
        )
        secret = _required_secret(settings.api_key_secret, "GATEWAY_API_KEY_SECRET").encode()
        if settings.bootstrap_admin_key is not None:
            async with runtime.database.session() as session, session.begin():
                await api_key_service.ensure_bootstrap_key(
                    session, settings.bootstrap_admin_key.get_secret_value(), secret
                )
        key_cache = KeyCache(ttl_s=settings.key_cache_ttl_s, redis=runtime.redis)
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as upstream:
            app.state.gateway = GatewayState(
                runtime=runtime,
                signer=signer,
                session=upstream,
                authenticator=Authenticator(secret, key_cache, runtime.database.sessionmaker),
                key_cache=key_cache,
                upstreams=dict(settings.upstreams),
                public_routes=dict(settings.public_routes),
                max_body_bytes=settings.max_body_bytes,
                timeout=aiohttp.ClientTimeout(
                    total=settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s
                ),
                audiences={
                    entry.gateway_prefix: entry.name for entry in SERVICES if entry.gateway_prefix
                },
            )
            yield

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
            lifespan_extension=_lifespan(settings),  # type: ignore[arg-type]
            middleware=(GatewayProxy,),
        )
    )
