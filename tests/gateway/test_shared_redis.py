"""Redis as the shared store: one global limit across gateway processes; Redis dying mid-run."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from tests.conftest import REDIS_URL, DatabaseFactory, require
from tests.gateway.conftest import RunningUpstream
from tests.gateway.support import (
    API_KEY_SECRET,
    add_key,
    free_port,
    gateway_client,
    gateway_settings,
    migrated_gateway_database,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(scope="session")
async def gateway_db(databases: DatabaseFactory) -> str:
    return await migrated_gateway_database(databases, "gw_redis")


@asynccontextmanager
async def gateway_process(
    database_url: str, signing_key: str, upstream_url: str, auth_limit: str
) -> AsyncIterator[str]:
    """A gateway in its own process (``kassa serve gateway``); yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_IDENTITY_SIGNING_KEY": signing_key,
        "GATEWAY_API_KEY_SECRET": API_KEY_SECRET,
        "GATEWAY_UPSTREAMS": f"up={upstream_url}",
        "REDIS_URL": REDIS_URL,
        "AUTH_RATE_LIMIT": auth_limit,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "shared.cli", "serve", "gateway"],
        cwd=ROOT,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, "the gateway process exited"
                assert time.monotonic() < deadline, "the gateway did not become ready"
                try:
                    if (await client.get(base_url + "/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(20)


async def test_two_gateway_processes_hold_one_global_limit(
    gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
) -> None:
    require("redis")
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    await client.aclose()
    key = await add_key(gateway_db, scopes=["read"])
    async with (
        gateway_process(gateway_db, signing_key_pair[0], upstream.url, "50/1h") as first,
        gateway_process(gateway_db, signing_key_pair[0], upstream.url, "50/1h") as second,
        httpx.AsyncClient(headers={"X-API-Key": key}, timeout=30) as http,
    ):

        async def call(index: int) -> int:
            base = first if index % 2 else second
            return (await http.get(f"{base}/v1/up/echo")).status_code

        statuses = Counter(await asyncio.gather(*(call(index) for index in range(200))))
    assert statuses == {200: 50, 429: 150}
    assert upstream.control.count("echo") == 50


@contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A Redis of our own, so a test can kill it without touching anyone else's."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
            ).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < deadline, "private redis did not start"
            time.sleep(0.05)
        yield process
    finally:
        process.kill()
        process.wait(10)


class TestRedisDiesMidRun:
    async def test_fail_open_falls_back_to_the_local_limiter(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"])
        port = free_port()
        with private_redis(port) as redis_process:
            settings = gateway_settings(
                gateway_db,
                signing_key_pair[0],
                {"up": upstream.url},
                redis_url=f"redis://127.0.0.1:{port}/0",
                auth_rate_limit="3/1m",
                rate_limit_fail_modes="auth=open",
            )
            async with gateway_client(settings) as client:
                headers = {"X-API-Key": key}
                before = (await client.get("/v1/up/echo", headers=headers)).status_code
                redis_process.kill()
                redis_process.wait(10)
                during = [
                    (await client.get("/v1/up/echo", headers=headers)).status_code for _ in range(4)
                ]
                metrics = (await client.get("/metrics")).text
        assert before == 200
        # The local limiter starts its own count: 3 allowed, then limited, never unlimited.
        assert during == [200, 200, 200, 429]
        assert 'kassa_gateway_rate_limit_fallback_total{mode="open",route_class="auth"}' in (
            metrics
        )
        assert "kassa_gateway_rate_limit_redis_up 0.0" in metrics

    async def test_fail_closed_answers_503_until_redis_is_back(
        self, gateway_db: str, signing_key_pair: tuple[str, str], upstream: RunningUpstream
    ) -> None:
        key = await add_key(gateway_db, scopes=["read"])
        port = free_port()
        settings = gateway_settings(
            gateway_db,
            signing_key_pair[0],
            {"up": upstream.url},
            redis_url=f"redis://127.0.0.1:{port}/0",
            auth_rate_limit="100/1m",
            rate_limit_fail_modes="auth=closed",
        )
        headers = {"X-API-Key": key}
        with private_redis(port) as redis_process:
            async with gateway_client(settings) as client:
                before = await client.get("/v1/up/echo", headers=headers)
                redis_process.kill()
                redis_process.wait(10)
                during = await client.get("/v1/up/echo", headers=headers)
                with private_redis(port):
                    await asyncio.sleep(1.1)  # the limiter retries Redis once a second
                    after = await client.get("/v1/up/echo", headers=headers)
        assert before.status_code == 200
        assert during.status_code == 503
        assert during.json()["type"] == "urn:kassa:problem:rate-limiter-unavailable"
        assert during.headers["Retry-After"] == "1"
        assert after.status_code == 200
        assert upstream.control.count("echo") == 2
