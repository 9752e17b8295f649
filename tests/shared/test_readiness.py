"""/ready means something: database, schema revision, Redis, and draining after SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from services.ledger_fee.app import MIGRATIONS as LEDGER_MIGRATIONS
from services.ledger_fee.app import create_app as create_ledger_app
from services.ledger_fee.config import LedgerSettings
from shared.db import Database
from shared.identity import AssertionSigner
from shared.migrations import upgrade_to_head
from shared.server import KassaServer, build_server
from tests.conftest import DatabaseFactory, assertion_header, running
from tests.shared.kit_app import create_kit_app, metadata


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ledger(url: str, public_key: str, **extra: object) -> FastAPI:
    return create_ledger_app(
        LedgerSettings(database_url=url, identity_public_keys=public_key, **extra)  # type: ignore[arg-type]
    )


class TestReadiness:
    async def test_ready_when_migrated(
        self, databases: DatabaseFactory, signing_key_pair: tuple[str, str]
    ) -> None:
        url = await databases.create("ready")
        await upgrade_to_head(LEDGER_MIGRATIONS, url)
        async with running(_ledger(url, signing_key_pair[1])) as client:
            reply = await client.get("/ready")
        assert reply.status_code == 200
        assert reply.json() == {
            "status": "ready",
            "checks": {"database": "ok", "migrations": "ok"},
        }

    async def test_not_ready_before_migrations(
        self, databases: DatabaseFactory, signing_key_pair: tuple[str, str]
    ) -> None:
        url = await databases.create("unmigrated")
        async with running(_ledger(url, signing_key_pair[1])) as client:
            reply = await client.get("/ready")
            health = await client.get("/health")
        assert reply.status_code == 503
        assert reply.json()["checks"]["migrations"].startswith("error: database at revision None")
        assert health.status_code == 200  # liveness never depends on the database

    async def test_not_ready_when_the_database_is_down(
        self, signing_key_pair: tuple[str, str]
    ) -> None:
        url = f"postgresql+asyncpg://kassa@127.0.0.1:{_free_port()}/kassa"
        app = _ledger(url, signing_key_pair[1], db_pool_timeout_s=1.0)
        async with running(app) as client:
            reply = await client.get("/ready")
        assert reply.status_code == 503
        assert reply.json()["checks"]["database"].startswith("error:")

    async def test_requests_get_503_problem_when_the_database_is_down(
        self, signing_key_pair: tuple[str, str], signer: AssertionSigner
    ) -> None:
        url = f"postgresql+asyncpg://kassa@127.0.0.1:{_free_port()}/kassa"
        app = create_kit_app(url, signing_key_pair[1], db_pool_timeout_s=1.0)
        async with running(app) as client:
            reply = await client.post(
                "/widgets",
                json={"name": "a", "quantity": 1},
                headers=assertion_header(signer, "kit"),
            )
        assert reply.status_code == 503
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["type"] == "urn:kassa:problem:database-unavailable"

    async def test_redis_is_checked_when_configured(
        self, databases: DatabaseFactory, signing_key_pair: tuple[str, str], redis_url: str
    ) -> None:
        url = await databases.create("redis")
        await upgrade_to_head(LEDGER_MIGRATIONS, url)
        down = f"redis://127.0.0.1:{_free_port()}/0"
        async with running(_ledger(url, signing_key_pair[1], redis_url=redis_url)) as client:
            assert (await client.get("/ready")).json()["checks"]["redis"] == "ok"
        async with running(_ledger(url, signing_key_pair[1], redis_url=down)) as client:
            reply = await client.get("/ready")
        assert reply.status_code == 503
        assert reply.json()["checks"]["redis"].startswith("error:")


@contextlib.asynccontextmanager
async def _serving_in_thread(server: KassaServer) -> AsyncIterator[threading.Thread]:
    """Serve on a thread of its own: uvicorn captures (and re-raises) signals only on the main
    thread, which would stop the test runner itself."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.02)
    try:
        yield thread
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


class TestGracefulShutdown:
    async def test_sigterm_turns_ready_to_503_and_finishes_in_flight_requests(
        self,
        databases: DatabaseFactory,
        signing_key_pair: tuple[str, str],
        signer: AssertionSigner,
    ) -> None:
        url = await databases.create("drain")
        database = Database(url)
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        await database.dispose()
        port = _free_port()
        app = create_kit_app(url, signing_key_pair[1], port=port, shutdown_drain_s=0.6)
        gate = asyncio.Event()
        app.state.gate = gate
        server = build_server(app, app.state.settings)
        base = f"http://127.0.0.1:{port}"
        async with _serving_in_thread(server) as thread, httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/ready")).status_code == 200
            in_flight = asyncio.create_task(
                client.post(
                    "/widgets",
                    json={"name": "late", "quantity": 1},
                    headers=assertion_header(signer, "kit"),
                )
            )
            await asyncio.sleep(0.2)
            server.handle_exit(signal.SIGTERM, None)
            draining = await client.get("/ready")
            assert draining.status_code == 503
            assert draining.json()["status"] == "draining"
            assert server._loop is not None
            server._loop.call_soon_threadsafe(gate.set)
            finished = await in_flight
            assert finished.status_code == 201
            await asyncio.to_thread(thread.join, 10)  # stops by itself after the drain
            assert not thread.is_alive()
            try:
                await client.get("/ready")
            except httpx.TransportError:
                pass
            else:
                raise AssertionError("the server still accepts connections after shutdown")
