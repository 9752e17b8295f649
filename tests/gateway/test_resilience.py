"""Upstreams that fail, flap, stall or stream: retries, the circuit breaker, timeouts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio

from gateway.breaker import CircuitBreaker, CircuitOpen, State
from tests.conftest import DatabaseFactory
from tests.gateway.conftest import RunningUpstream
from tests.gateway.support import (
    UpstreamControl,
    add_key,
    free_port,
    gateway_client,
    gateway_settings,
    migrated_gateway_database,
    serving,
    upstream_app,
)


@pytest_asyncio.fixture(scope="session")
async def gateway_db(databases: DatabaseFactory) -> str:
    return await migrated_gateway_database(databases, "gw_res")


@pytest_asyncio.fixture(scope="session")
async def key(gateway_db: str) -> str:
    return await add_key(gateway_db, scopes=["read", "write"])


def policy(**fields: Any) -> dict[str, Any]:
    return {"retries": 0, "breaker_failures": 100, "breaker_cooldown_s": 0.5} | fields


class TestRetries:
    async def test_idempotent_requests_are_retried_on_503(
        self,
        gateway_db: str,
        key: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
    ) -> None:
        upstream.control.failing_status = 503
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            upstream_policy=policy(retries=2),
        )
        async with gateway_client(settings) as client:
            reply = await client.get("/v1/up/flaky", headers={"X-API-Key": key})
        assert reply.status_code == 503
        assert reply.json() == {"broken": True}  # the service's own answer, passed through
        assert upstream.control.count("flaky") == 3

    async def test_a_post_is_retried_only_with_an_idempotency_key(
        self,
        gateway_db: str,
        key: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
    ) -> None:
        upstream.control.failing_status = 503
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            upstream_policy=policy(retries=2),
        )
        async with gateway_client(settings) as client:
            await client.post("/v1/up/flaky", headers={"X-API-Key": key})
            plain = upstream.control.count("flaky")
            await client.post(
                "/v1/up/flaky", headers={"X-API-Key": key, "Idempotency-Key": "retry-me"}
            )
        assert plain == 1
        assert upstream.control.count("flaky") == 1 + 3

    async def test_a_refused_connection_is_a_502_problem_after_retries(
        self, gateway_db: str, key: str, signing_key_pair: tuple[str, str]
    ) -> None:
        port = free_port()
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": f"http://127.0.0.1:{port}"},
            upstream_policy=policy(retries=5),
        )
        async with gateway_client(settings) as client:
            refused = await client.get("/v1/up/flaky", headers={"X-API-Key": key})
            assert refused.status_code == 502
            assert refused.json()["type"] == "urn:kassa:problem:upstream-unreachable"
            assert refused.json()["instance"] == "/v1/up/flaky"
            assert refused.headers["X-Request-ID"]


class TestCircuitBreaker:
    async def test_opens_after_failures_refuses_fast_then_probes_and_closes(
        self,
        gateway_db: str,
        key: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
    ) -> None:
        upstream.control.failing_status = 503
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            upstream_policy=policy(breaker_failures=3, breaker_cooldown_s=0.5),
        )
        headers = {"X-API-Key": key}
        async with gateway_client(settings) as client:
            failing = [(await client.get("/v1/up/flaky", headers=headers)) for _ in range(3)]
            refused = await client.get("/v1/up/flaky", headers=headers)
            assert [reply.status_code for reply in failing] == [503, 503, 503]
            assert refused.status_code == 503
            assert refused.json()["type"] == "urn:kassa:problem:upstream-circuit-open"
            assert refused.headers["Retry-After"] == "1"
            assert upstream.control.count("flaky") == 3  # the open circuit spared the service

            await asyncio.sleep(0.6)  # cool-down over: one probe, which fails: open again
            probe = await client.get("/v1/up/flaky", headers=headers)
            after_probe = await client.get("/v1/up/flaky", headers=headers)
            assert probe.status_code == 503
            assert probe.json() == {"broken": True}
            assert after_probe.json()["type"] == "urn:kassa:problem:upstream-circuit-open"

            upstream.control.failing_status = None
            await asyncio.sleep(0.6)
            healed = [(await client.get("/v1/up/flaky", headers=headers)) for _ in range(3)]
            ready = (await client.get("/ready")).json()
        assert [reply.status_code for reply in healed] == [200, 200, 200]
        assert ready["upstreams"]["up"] == {"status": "ok", "circuit": "closed"}

    async def test_a_service_that_was_down_is_reached_once_it_is_up(
        self, gateway_db: str, key: str, signing_key_pair: tuple[str, str]
    ) -> None:
        port = free_port()
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": f"http://127.0.0.1:{port}"},
            upstream_policy=policy(breaker_failures=2, breaker_cooldown_s=0.5),
        )
        headers = {"X-API-Key": key}
        async with gateway_client(settings) as client:
            down = [(await client.get("/v1/up/flaky", headers=headers)).status_code for _ in "abc"]
            ready = (await client.get("/ready")).json()
            assert down == [502, 502, 503]
            assert ready["upstreams"]["up"]["circuit"] == "open"
            assert ready["upstreams"]["up"]["status"].startswith("error: unreachable")
            with serving(upstream_app(UpstreamControl()), port):
                await asyncio.sleep(0.6)
                back = await client.get("/v1/up/flaky", headers=headers)
        assert back.status_code == 200

    def test_half_open_admits_a_single_probe(self) -> None:
        now = [0.0]
        breaker = CircuitBreaker("up", failures=1, cooldown_s=5, clock=lambda: now[0])
        breaker.record_failure()
        assert breaker.state is State.OPEN
        now[0] = 5.0
        breaker.admit()  # the probe
        with pytest.raises(CircuitOpen) as refusal:
            breaker.admit()  # a second request while the probe is out
        assert refusal.value.headers["Retry-After"] == "1"
        breaker.record_success()
        assert breaker.state.name == "CLOSED"
        breaker.admit()


class TestTimeoutsAndStreaming:
    async def test_a_slow_service_is_504_and_not_retried(
        self,
        gateway_db: str,
        key: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
    ) -> None:
        upstream.control.delay_s = 2.0
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            upstream_policy=policy(retries=3, timeout_s=0.3),
        )
        async with gateway_client(settings) as client:
            reply = await client.get("/v1/up/slow", headers={"X-API-Key": key})
        assert reply.status_code == 504
        assert reply.json()["type"] == "urn:kassa:problem:upstream-timeout"
        assert upstream.control.count("slow") == 1

    async def test_streamed_replies_pass_through(
        self,
        gateway_db: str,
        key: str,
        signing_key_pair: tuple[str, str],
        upstream: RunningUpstream,
    ) -> None:
        settings = gateway_settings(gateway_db, signing_key_pair[0], {"up": upstream.url})
        async with (
            gateway_client(settings) as client,
            client.stream("GET", "/v1/up/stream", headers={"X-API-Key": key}) as reply,
        ):
            chunks = [chunk async for chunk in reply.aiter_text()]
        assert "".join(chunks) == "".join(f"chunk-{index}\n" for index in range(5))
        assert "content-length" not in reply.headers

    async def test_ready_reports_every_upstream_without_failing_on_one(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url, "dead": f"http://127.0.0.1:{free_port()}"},
        )
        async with gateway_client(settings) as client:
            reply = await client.get("/ready")
        assert reply.status_code == 200
        body = reply.json()
        assert body["upstreams"]["up"] == {"status": "ok", "circuit": "closed"}
        assert body["upstreams"]["dead"]["status"].startswith("error: unreachable")
