"""GCRA rate limits: exact headers, burst and refill, tiers, per-IP buckets, shared Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from tests.conftest import DatabaseFactory, require
from tests.gateway.conftest import RunningUpstream
from tests.gateway.support import (
    add_key,
    gateway_client,
    gateway_settings,
    migrated_gateway_database,
)


@pytest_asyncio.fixture(scope="session")
async def gateway_db(databases: DatabaseFactory) -> str:
    return await migrated_gateway_database(databases, "gw_rl")


@pytest_asyncio.fixture(params=["in-process", "redis"])
async def limiter_redis(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """Each limit test runs on the in-process limiter and on a real Redis."""
    if request.param == "in-process":
        yield None
        return
    require("redis")
    url = "redis://127.0.0.1:6379/15"
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    yield url


class TestGcra:
    async def test_burst_then_429_with_exact_headers(
        self,
        gateway_db: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
        limiter_redis: str | None,
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"])
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            redis_url=limiter_redis,
            auth_rate_limit="3/10s",
        )
        async with gateway_client(settings) as client:
            headers = {"X-API-Key": key}
            replies = [await client.get("/v1/up/echo", headers=headers) for _ in range(4)]
        assert [reply.status_code for reply in replies] == [200, 200, 200, 429]
        for reply, remaining in zip(replies[:3], (2, 1, 0), strict=True):
            assert reply.headers["RateLimit-Policy"] == '"auth";q=3;w=10'
            # The first request leaves one interval (10/3 s) before the bucket is full again.
            resets = {2: "4", 1: "7", 0: "10"}[remaining]
            assert reply.headers["RateLimit"] == f'"auth";r={remaining};t={resets}'
            assert reply.headers["RateLimit-Limit"] == "3"
            assert reply.headers["RateLimit-Remaining"] == str(remaining)
            assert reply.headers["RateLimit-Reset"] == resets
        refused = replies[3]
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:kassa:problem:rate-limited"
        assert refused.headers["Retry-After"] == "4"  # one interval, 3.33 s, rounded up
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert upstream.control.count("echo") == 3  # the refused request never went upstream

    async def test_the_bucket_refills_one_interval_at_a_time(
        self,
        gateway_db: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
        limiter_redis: str | None,
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"])
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            redis_url=limiter_redis,
            auth_rate_limit="2/1s",
        )
        async with gateway_client(settings) as client:
            headers = {"X-API-Key": key}
            burst = [(await client.get("/v1/up/echo", headers=headers)).status_code for _ in "abc"]
            await asyncio.sleep(0.6)  # one interval (0.5 s) has passed: exactly one more
            after = [(await client.get("/v1/up/echo", headers=headers)).status_code for _ in "ab"]
        assert burst == [200, 200, 429]
        assert after == [200, 429]

    async def test_tiers_scale_the_limit_and_zero_means_unlimited(
        self,
        gateway_db: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
        limiter_redis: str | None,
    ) -> None:
        gold = await add_key(gateway_db, scopes=["read"], tier="gold")
        internal = await add_key(gateway_db, scopes=["read"], tier="internal")
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            redis_url=limiter_redis,
            auth_rate_limit="2/1m",
            rate_limit_tiers="default=1,gold=2.5,internal=0",
        )
        async with gateway_client(settings) as client:
            gold_replies = [
                await client.get("/v1/up/echo", headers={"X-API-Key": gold}) for _ in range(6)
            ]
            internal_replies = [
                await client.get("/v1/up/echo", headers={"X-API-Key": internal}) for _ in range(6)
            ]
        assert [reply.status_code for reply in gold_replies] == [200] * 5 + [429]
        assert gold_replies[0].headers["RateLimit-Policy"] == '"auth-gold";q=5;w=60'
        assert all(reply.status_code == 200 for reply in internal_replies)
        assert "RateLimit" not in internal_replies[0].headers

    async def test_verify_routes_have_their_own_limit(
        self,
        gateway_db: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
        limiter_redis: str | None,
    ) -> None:
        key = await add_key(gateway_db, scopes=["facilitator:settle", "read"])
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"facilitator": upstream.url},
            redis_url=limiter_redis,
            verify_rate_limit="1/1m",
            auth_rate_limit="100/1m",
            route_rules=[
                {
                    "prefix": "/v1/facilitator/echo",
                    "route_class": "verify",
                    "scopes": ["facilitator:settle"],
                }
            ],
        )
        async with gateway_client(settings) as client:
            headers = {"X-API-Key": key}
            verify = [await client.post("/v1/facilitator/echo", headers=headers) for _ in "ab"]
            other = await client.get("/v1/facilitator/flaky", headers=headers)
        assert [reply.status_code for reply in verify] == [200, 429]
        assert verify[0].headers["RateLimit-Policy"] == '"verify";q=1;w=60'
        assert other.status_code == 200
        assert other.headers["RateLimit-Policy"] == '"auth";q=100;w=60'


class TestPerClientIp:
    async def test_public_routes_are_limited_per_client_ip_behind_trusted_proxies(
        self,
        gateway_db: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
        limiter_redis: str | None,
    ) -> None:
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            public_routes="/echo=up",
            redis_url=limiter_redis,
            public_rate_limit="1/1m",
            trusted_proxies="127.0.0.0/8",
        )
        async with gateway_client(settings) as client:

            async def from_ip(forwarded_for: str) -> int:
                reply = await client.post("/echo", headers={"X-Forwarded-For": forwarded_for})
                return reply.status_code

            # The ASGI test client's peer is 127.0.0.1, a trusted proxy: the client is the
            # right-most untrusted address, whatever the client wrote to the left of it.
            first = await from_ip("203.0.113.7")
            again = await from_ip("198.51.100.1, 203.0.113.7")
            other = await from_ip("203.0.113.8")
        assert (first, again, other) == (200, 429, 200)

    async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
        self,
        gateway_db: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
        limiter_redis: str | None,
    ) -> None:
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            public_routes="/echo=up",
            redis_url=limiter_redis,
            public_rate_limit="1/1m",
        )
        async with gateway_client(settings) as client:
            first = await client.post("/echo", headers={"X-Forwarded-For": "203.0.113.7"})
            spoofed = await client.post("/echo", headers={"X-Forwarded-For": "203.0.113.9"})
        assert (first.status_code, spoofed.status_code) == (200, 429)
