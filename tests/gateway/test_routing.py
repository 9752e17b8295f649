"""The gateway routes /v1/<service>/... to real services with a signed caller assertion."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio

from gateway.app import MIGRATIONS as GATEWAY_MIGRATIONS
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from services.ledger_fee.app import MIGRATIONS as LEDGER_MIGRATIONS
from services.ledger_fee.app import create_app as create_ledger
from services.ledger_fee.config import LedgerSettings
from shared.api_key_format import generate_api_key
from shared.db import Database
from shared.migrations import upgrade_to_head
from shared.server import build_server
from shared.settings import DEVELOPMENT_SECRET_PREFIX
from tests.conftest import DatabaseFactory, running
from tests.shared.kit_app import create_kit_app, metadata


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    gateway: httpx.AsyncClient
    admin_key: str
    ledger_port: int


@pytest_asyncio.fixture(scope="session")
async def stack(
    databases: DatabaseFactory, signing_key_pair: tuple[str, str]
) -> AsyncIterator[Stack]:
    """A real ledger service on a port, and the gateway in front of it."""
    private, public = signing_key_pair
    ledger_url = await databases.create("gw_ledger")
    gateway_url = await databases.create("gw")
    await upgrade_to_head(LEDGER_MIGRATIONS, ledger_url)
    await upgrade_to_head(GATEWAY_MIGRATIONS, gateway_url)
    kit_url = await databases.create("gw_kit")
    kit_db = Database(kit_url)
    async with kit_db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    await kit_db.dispose()

    ledger_port, kit_port, dead_port = _free_port(), _free_port(), _free_port()
    servers = [
        build_server(
            create_ledger(
                LedgerSettings(
                    database_url=ledger_url, identity_public_keys=public, port=ledger_port
                )
            ),
            LedgerSettings(port=ledger_port),
        ),
        build_server(
            create_kit_app(kit_url, public, port=kit_port),
            LedgerSettings(port=kit_port),
        ),
    ]
    threads = [threading.Thread(target=server.run, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    while not all(server.started for server in servers):  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.02)
    admin_key = generate_api_key("test")
    settings = GatewaySettings(
        database_url=gateway_url,
        identity_signing_key=private,
        api_key_secret=DEVELOPMENT_SECRET_PREFIX + "gateway-test",
        bootstrap_admin_key=admin_key,
        upstreams={
            "ledger": f"http://127.0.0.1:{ledger_port}",
            "kit": f"http://127.0.0.1:{kit_port}",
            "dead": f"http://127.0.0.1:{dead_port}",
        },
        max_body_bytes=1024,
    )
    try:
        async with running(create_gateway(settings), base_url="http://gateway") as client:
            yield Stack(gateway=client, admin_key=admin_key, ledger_port=ledger_port)
    finally:
        for server in servers:
            server.should_exit = True
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)


class TestRouting:
    async def test_service_health_answers_through_the_gateway(self, stack: Stack) -> None:
        reply = await stack.gateway.get(
            "/v1/ledger/health", headers={"Authorization": f"Bearer {stack.admin_key}"}
        )
        assert reply.status_code == 200
        assert reply.json() == {"status": "ok"}

    async def test_service_verifies_the_gateways_assertion(self, stack: Stack) -> None:
        reply = await stack.gateway.get("/v1/kit/whoami", headers={"X-API-Key": stack.admin_key})
        assert reply.status_code == 200
        assert reply.json()["owner"] == "bootstrap"
        assert reply.json()["scopes"] == ["admin"]

    async def test_the_service_refuses_a_direct_call(self, stack: Stack) -> None:
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"http://127.0.0.1:{stack.ledger_port}/openapi.json")
        assert reply.status_code == 401

    async def test_a_forged_assertion_from_the_client_is_not_forwarded(self, stack: Stack) -> None:
        reply = await stack.gateway.get(
            "/v1/kit/whoami",
            headers={"X-API-Key": stack.admin_key, "X-Kassa-Caller": "forged.by.client"},
        )
        assert reply.status_code == 200  # the gateway replaced it with its own

    async def test_request_id_travels_to_the_service_and_back(self, stack: Stack) -> None:
        reply = await stack.gateway.get(
            "/v1/kit/items/7",
            headers={"X-API-Key": stack.admin_key, "X-Request-ID": "trace-gw-1"},
        )
        assert reply.status_code == 200
        assert reply.headers["x-request-id"] == "trace-gw-1"

    async def test_service_errors_pass_through_as_problems(self, stack: Stack) -> None:
        reply = await stack.gateway.get("/v1/kit/items/abc", headers={"X-API-Key": stack.admin_key})
        assert reply.status_code == 422
        assert reply.json()["errors"][0]["field"] == "path.item_id"

    async def test_post_bodies_and_idempotency_keys_reach_the_service(self, stack: Stack) -> None:
        headers = {"X-API-Key": stack.admin_key, "Idempotency-Key": "gw-1"}
        body = {"name": "via-gateway", "quantity": 2}
        first = await stack.gateway.post("/v1/kit/widgets", json=body, headers=headers)
        second = await stack.gateway.post("/v1/kit/widgets", json=body, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.headers["idempotent-replayed"] == "true"


class TestKeysAndRefusals:
    async def test_missing_key_is_401_with_www_authenticate(self, stack: Stack) -> None:
        reply = await stack.gateway.get("/v1/ledger/health")
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == 'Bearer realm="kassa"'
        assert reply.headers["content-type"] == "application/problem+json"

    async def test_unknown_but_well_formed_key_is_401(self, stack: Stack) -> None:
        reply = await stack.gateway.get(
            "/v1/ledger/health", headers={"X-API-Key": generate_api_key("test")}
        )
        assert reply.status_code == 401
        assert reply.json()["detail"] == "The API key is not recognised."

    async def test_key_in_the_query_string_is_refused_saying_why(self, stack: Stack) -> None:
        reply = await stack.gateway.get(f"/v1/ledger/health?api_key={stack.admin_key}")
        assert reply.status_code == 400
        assert "query string" in reply.json()["detail"]

    async def test_oversized_body_is_413(self, stack: Stack) -> None:
        reply = await stack.gateway.post(
            "/v1/kit/widgets", content=b"x" * 2048, headers={"X-API-Key": stack.admin_key}
        )
        assert reply.status_code == 413

    async def test_unreachable_upstream_is_502_problem(self, stack: Stack) -> None:
        reply = await stack.gateway.get("/v1/dead/health", headers={"X-API-Key": stack.admin_key})
        assert reply.status_code == 502
        assert reply.json()["type"] == "urn:kassa:problem:upstream-unreachable"

    async def test_unknown_service_prefix_is_404_problem(self, stack: Stack) -> None:
        reply = await stack.gateway.get(
            "/v1/nowhere/health", headers={"X-API-Key": stack.admin_key}
        )
        assert reply.status_code == 404
        assert reply.headers["content-type"] == "application/problem+json"
