"""What the gateway tests share: a controllable upstream on a real port, gateways, keys."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.app import MIGRATIONS as GATEWAY_MIGRATIONS
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from gateway.models import ApiKey
from shared.api_key_format import display_prefix, generate_api_key, hash_api_key
from shared.db import Database
from shared.ids import new_id_str
from shared.migrations import upgrade_to_head
from shared.settings import DEVELOPMENT_SECRET_PREFIX
from tests.conftest import DatabaseFactory, running

API_KEY_SECRET = DEVELOPMENT_SECRET_PREFIX + "gateway-tests"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class UpstreamControl:
    """Knobs a test turns on the upstream while it runs."""

    failing_status: int | None = None  # /flaky answers this while set
    delay_s: float = 0.0  # /slow waits this long
    hits: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> int:
        return self.hits.get(name, 0)


def upstream_app(control: UpstreamControl) -> Starlette:
    """Echo, flaky, slow and streaming routes: a service as the gateway sees it from outside."""

    def hit(name: str) -> None:
        control.hits[name] = control.hits.get(name, 0) + 1

    async def echo(request: Request) -> Response:
        hit("echo")
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "body": (await request.body()).decode(),
            }
        )

    async def flaky(request: Request) -> Response:
        hit("flaky")
        if control.failing_status is not None:
            return JSONResponse({"broken": True}, status_code=control.failing_status)
        return JSONResponse({"ok": True})

    async def slow(request: Request) -> Response:
        hit("slow")
        await asyncio.sleep(control.delay_s)
        return JSONResponse({"slept": control.delay_s})

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(5):
                yield f"chunk-{index}\n".encode()
                await asyncio.sleep(0.05)

        return StreamingResponse(chunks(), media_type="text/plain")

    async def ready(request: Request) -> Response:
        return JSONResponse({"status": "ready"})

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(
        routes=[
            Route("/echo", echo, methods=methods),
            Route("/flaky", flaky, methods=methods),
            Route("/slow", slow, methods=methods),
            Route("/stream", stream),
            Route("/ready", ready),
        ]
    )


@contextmanager
def serving(app: Any, port: int) -> Iterator[uvicorn.Server]:
    """Serve ``app`` on ``port`` in a thread until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)


async def migrated_gateway_database(databases: DatabaseFactory, label: str = "gw") -> str:
    url = await databases.create(label)
    await upgrade_to_head(GATEWAY_MIGRATIONS, url)
    return url


async def add_key(
    database_url: str,
    *,
    scopes: list[str],
    owner: str = "acme",
    service: str | None = None,
    tier: str = "default",
    expires_in: timedelta | None = None,
) -> str:
    """A new key row written straight to the database; returns the key."""
    key = generate_api_key("test")
    database = Database(database_url)
    now = datetime.now(UTC)
    try:
        async with database.session() as session, session.begin():
            session.add(
                ApiKey(
                    id=new_id_str(),
                    key_hash=hash_api_key(key, API_KEY_SECRET.encode()),
                    display_prefix=display_prefix(key),
                    owner=owner,
                    name="test key",
                    environment="test",
                    scopes=scopes,
                    service=service,
                    rate_limit_tier=tier,
                    created_at=now,
                    expires_at=now + expires_in if expires_in else None,
                )
            )
    finally:
        await database.dispose()
    return key


def gateway_settings(
    database_url: str, signing_key: str, upstreams: dict[str, str], **overrides: Any
) -> GatewaySettings:
    """Gateway settings for a test; ``overrides`` are settings fields."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "identity_signing_key": signing_key,
        "api_key_secret": API_KEY_SECRET,
        "upstreams": upstreams,
        "log_level": "WARNING",
    }
    fields.update(overrides)
    return GatewaySettings(**fields)


@asynccontextmanager
async def gateway_client(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway app with its lifespan running, and an in-process client to it."""
    async with running(create_gateway(settings), base_url="http://gateway") as client:
        yield client
