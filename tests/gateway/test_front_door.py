"""The front door: scopes, service identities, CORS, forwarded headers, the key cache."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from pydantic import ValidationError

from gateway.config import GatewaySettings
from gateway.key_cache import KeyCache, Principal
from gateway.proxy import GatewayState
from gateway.repository import ApiKeyRepository
from shared.api_key_format import hash_api_key
from shared.db import Database
from shared.identity import AssertionVerifier, load_public_keys
from tests.conftest import DatabaseFactory
from tests.gateway.conftest import RunningUpstream
from tests.gateway.support import (
    API_KEY_SECRET,
    add_key,
    gateway_client,
    gateway_settings,
    migrated_gateway_database,
)

ORIGIN = "https://dashboard.example.com"


@pytest_asyncio.fixture(scope="session")
async def gateway_db(databases: DatabaseFactory) -> str:
    return await migrated_gateway_database(databases, "gw_door")


class TestScopes:
    async def test_read_scope_reads_but_does_not_write(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"])
        settings = gateway_settings(gateway_db, signing_key_pair[0], {"ledger": upstream.url})
        async with gateway_client(settings) as client:
            read = await client.get("/v1/ledger/echo", headers={"X-API-Key": key})
            write = await client.post("/v1/ledger/echo", headers={"X-API-Key": key})
        assert read.status_code == 200
        assert write.status_code == 403
        assert write.headers["content-type"] == "application/problem+json"
        assert write.json()["type"] == "urn:kassa:problem:insufficient-scope"
        assert "ledger:write" in write.json()["detail"]
        assert upstream.control.count("echo") == 1

    async def test_a_service_scope_covers_that_service_only(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        key = await add_key(gateway_db, scopes=["ledger:write"])
        settings = gateway_settings(
            gateway_db, signing_key_pair[0], {"ledger": upstream.url, "fiscal": upstream.url}
        )
        async with gateway_client(settings) as client:
            ledger = await client.post("/v1/ledger/echo", headers={"X-API-Key": key})
            fiscal = await client.post("/v1/fiscal/echo", headers={"X-API-Key": key})
        assert (ledger.status_code, fiscal.status_code) == (200, 403)

    async def test_settlement_needs_the_settle_scope_not_plain_write(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        writer = await add_key(gateway_db, scopes=["write"])
        settler = await add_key(gateway_db, scopes=["facilitator:settle"])
        settings = gateway_settings(gateway_db, signing_key_pair[0], {"facilitator": upstream.url})
        async with gateway_client(settings) as client:
            refused = await client.post("/v1/facilitator/settle", headers={"X-API-Key": writer})
            allowed = await client.post("/v1/facilitator/settle", headers={"X-API-Key": settler})
        assert refused.status_code == 403
        assert allowed.status_code == 404  # reached the upstream, which has no such route

    async def test_routes_admit_only_the_configured_service_identities(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        custody = await add_key(gateway_db, scopes=["ledger:write"], service="custody")
        fiscal = await add_key(gateway_db, scopes=["ledger:write"], service="fiscal")
        person = await add_key(gateway_db, scopes=["ledger:write"])
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"ledger": upstream.url},
            route_rules=[{"prefix": "/v1/ledger/echo", "callers": ["custody"]}],
        )
        async with gateway_client(settings) as client:
            replies = [
                await client.post("/v1/ledger/echo", headers={"X-API-Key": key})
                for key in (custody, fiscal, person)
            ]
        assert [reply.status_code for reply in replies] == [200, 403, 403]
        assert replies[1].json()["type"] == "urn:kassa:problem:caller-not-permitted"
        assert "custody" in replies[1].json()["detail"]

    async def test_expired_key_is_401_saying_so(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"], expires_in=timedelta(seconds=-1))
        settings = gateway_settings(gateway_db, signing_key_pair[0], {"up": upstream.url})
        async with gateway_client(settings) as client:
            reply = await client.get("/v1/up/echo", headers={"Authorization": f"Bearer {key}"})
        assert reply.status_code == 401
        assert reply.headers["WWW-Authenticate"] == 'Bearer realm="kassa"'
        assert "expired" in reply.json()["detail"]


class TestForwarding:
    async def test_the_service_gets_a_verifiable_assertion_and_forwarding_headers(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"], owner="shop-42", service="custody")
        settings = gateway_settings(gateway_db, signing_key_pair[0], {"ledger": upstream.url})
        async with gateway_client(settings) as client:
            replies = [
                await client.get(
                    "/v1/ledger/echo?page=2",
                    headers={"X-API-Key": key, "X-Request-ID": f"req-{index}", "Host": "api.x"},
                )
                for index in range(2)
            ]
        seen = [reply.json()["headers"] for reply in replies]
        verifier = AssertionVerifier(load_public_keys(signing_key_pair[1]), audience="ledger_fee")
        caller = verifier.verify(seen[0]["x-kassa-caller"])
        assert (caller.owner, caller.service) == ("shop-42", "custody")
        assert caller.scopes == frozenset({"read"})
        # The signature is reused for the key's next requests; the request id travels apart.
        assert seen[0]["x-kassa-caller"] == seen[1]["x-kassa-caller"]
        assert [headers["x-request-id"] for headers in seen] == ["req-0", "req-1"]
        assert replies[0].json()["query"] == "page=2"
        assert "x-api-key" not in seen[0]
        assert seen[0]["x-forwarded-for"] == "127.0.0.1"
        assert seen[0]["x-forwarded-host"] == "api.x"
        assert seen[0]["x-forwarded-proto"] == "http"
        assert seen[0]["traceparent"].startswith("00-")


class TestCors:
    async def test_a_listed_origin_gets_credentials_and_exposed_headers(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"])
        settings = gateway_settings(
            gateway_db, signing_key_pair[0], {"up": upstream.url}, allowed_origins=ORIGIN
        )
        async with gateway_client(settings) as client:
            reply = await client.get("/v1/up/echo", headers={"X-API-Key": key, "Origin": ORIGIN})
            refused = await client.get("/v1/up/echo", headers={"Origin": ORIGIN})
        assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert reply.headers["Access-Control-Allow-Credentials"] == "true"
        exposed = reply.headers["Access-Control-Expose-Headers"]
        for header in ("RateLimit", "Retry-After", "X-Request-ID", "PAYMENT-RESPONSE"):
            assert header in exposed
        # A refusal is readable by the listed origin too.
        assert refused.status_code == 401
        assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN

    async def test_an_unlisted_origin_gets_no_cors_headers_at_all(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"])
        settings = gateway_settings(
            gateway_db, signing_key_pair[0], {"up": upstream.url}, allowed_origins=ORIGIN
        )
        async with gateway_client(settings) as client:
            reply = await client.get(
                "/v1/up/echo", headers={"X-API-Key": key, "Origin": "https://evil.example"}
            )
        assert reply.status_code == 200
        assert not [name for name in reply.headers if name.lower().startswith("access-control")]
        assert "Origin" in reply.headers["Vary"]

    async def test_preflight_is_answered_by_the_gateway(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        settings = gateway_settings(
            gateway_db, signing_key_pair[0], {"up": upstream.url}, allowed_origins=ORIGIN
        )
        requested = "x-api-key, idempotency-key, payment-signature, x-payment, content-type"
        async with gateway_client(settings) as client:
            allowed = await client.options(
                "/v1/up/echo",
                headers={
                    "Origin": ORIGIN,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": requested,
                },
            )
            refused = await client.options(
                "/v1/up/echo",
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
            )
        assert allowed.status_code == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
        for header in ("X-API-Key", "Idempotency-Key", "PAYMENT-SIGNATURE", "X-PAYMENT"):
            assert header in allowed.headers["Access-Control-Allow-Headers"]
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["refused"] == ["origin"]
        assert "access-control-allow-origin" not in refused.headers
        assert upstream.control.count("echo") == 0  # preflights never reach a service

    def test_production_refuses_a_wildcard_origin(self) -> None:
        with pytest.raises(ValidationError, match="ALLOWED_ORIGINS must list origins"):
            GatewaySettings(
                env="production",
                database_url="postgresql+asyncpg://db/gateway",
                identity_signing_key="real-key",
                api_key_secret="real-secret",
                allowed_origins="*",
            )


class TestConfiguration:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("auth_rate_limit", "lots"),
            ("rate_limit_fail_modes", "auth=maybe"),
            ("trusted_proxies", "10.0.0.0/33"),
            ("rate_limit_tiers", "gold=fast"),
        ],
    )
    def test_bad_values_are_refused_naming_the_setting(self, field: str, value: str) -> None:
        with pytest.raises(ValidationError, match=field):
            GatewaySettings.model_validate({field: value})


class TestKeyCache:
    async def test_a_read_that_raced_an_invalidation_is_not_cached(self) -> None:
        cache = KeyCache(ttl_s=30)
        stale = Principal("k1", "acme", frozenset({"read"}), None, "test", "default", None, False)
        revoked = Principal("k1", "acme", frozenset({"read"}), None, "test", "default", None, True)
        answers = [stale, revoked]
        reading = asyncio.Event()
        resume = asyncio.Event()

        async def slow_load(key_hash: str) -> Principal | None:
            answer = answers.pop(0)
            if answer is stale:
                reading.set()
                await resume.wait()
            return answer

        first = asyncio.create_task(cache.get("h1", slow_load))
        await reading.wait()
        await cache.invalidate(["h1"])  # the revocation commits while the read is in flight
        resume.set()
        before = await first
        after = await cache.get("h1", slow_load)
        assert before is stale  # that request started before the revocation
        assert after is revoked  # the next one sees it

    async def test_invalidations_reach_other_processes_through_redis(self, redis_url: str) -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url)
        principal = Principal("k1", "acme", frozenset(), None, "test", "default", None, False)
        here, there = KeyCache(ttl_s=30, redis=client), KeyCache(ttl_s=30, redis=client)
        listener = asyncio.create_task(there.listen())
        loads = 0

        async def load(key_hash: str) -> Principal | None:
            nonlocal loads
            loads += 1
            return principal

        try:
            await asyncio.sleep(0.2)  # subscribed
            await there.get("h1", load)
            await here.get("h1", load)  # served from the entry the other one put in Redis
            assert loads == 1
            await there.get("h1", load)
            await here.invalidate(["h1"])
            for _ in range(50):
                await asyncio.sleep(0.02)
                await there.get("h1", load)
                if loads == 2:
                    break
            assert loads == 2  # the other process dropped its local entry and reloaded
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await client.aclose()


class TestLastUsed:
    async def test_use_is_written_in_one_batch_and_never_moves_back(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"])
        settings = gateway_settings(gateway_db, signing_key_pair[0], {"up": upstream.url})
        async with gateway_client(settings) as client:
            for _ in range(3):
                await client.get("/v1/up/echo", headers={"X-API-Key": key})
            state = client._transport.app.state.gateway  # type: ignore[attr-defined]
            database = Database(gateway_db)
            try:
                assert await _last_used(database, key) is None  # nothing written per request
                assert await state.usage.flush() == 1
                first = await _last_used(database, key)
                assert first is not None
                state.usage.record(_key_id_of_first(state), 0.0)  # an older use, reported late
                await state.usage.flush()
                assert await _last_used(database, key) == first
            finally:
                await database.dispose()


async def _last_used(database: Database, key: str) -> datetime | None:
    key_hash = hash_api_key(key, API_KEY_SECRET.encode())
    async with database.session() as session:
        row = await ApiKeyRepository(session).get_by_hash(key_hash)
    assert row is not None
    return row.last_used_at


def _key_id_of_first(state: GatewayState) -> str:
    cached = [entry[1] for entry in state.key_cache._local.values() if entry[1] is not None]
    return cached[0].key_id
