"""Fixtures every test shares: both database backends, Redis, caller identities, running apps.

Every database test runs twice, on the embedded SQLite default and on a real PostgreSQL (a fresh
database per test session, dropped at the end). Without a reachable PostgreSQL or Redis those
runs are skipped and the summary says so; with ``KASSA_REQUIRE_SERVICES=1`` (CI) they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from shared.identity import AssertionSigner, Caller, generate_signing_key

REQUIRE_SERVICES = os.environ.get("KASSA_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get(
    "KASSA_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("KASSA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

_unavailable: dict[str, str] = {}


async def _probe_postgres() -> str | None:
    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    try:
        connection = await asyncpg.connect(url.render_as_string(hide_password=False), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL not reachable at {url.render_as_string()}: {exc}"
    await connection.close()
    return None


async def _probe_redis() -> str | None:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # any failure means "not there"
        return f"Redis not reachable at {REDIS_URL}: {exc}"
    finally:
        await client.aclose()
    return None


def pytest_configure(config: pytest.Config) -> None:
    async def probe() -> None:
        for name, check in (("postgres", _probe_postgres), ("redis", _probe_redis)):
            reason = await check()
            if reason:
                _unavailable[name] = reason

    asyncio.run(probe())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("Kassa backends")
    for name in ("postgres", "redis"):
        if name in _unavailable:
            terminalreporter.write_line(
                f"{name}: SKIPPED, tests on the real {name} did not run ({_unavailable[name]})"
            )
        else:
            terminalreporter.write_line(f"{name}: used")
    terminalreporter.write_line("sqlite: used (embedded default)")


def require(service: str) -> None:
    """Skip (or, in CI, fail) a test that needs ``service`` when it is not reachable."""
    reason = _unavailable.get(service)
    if reason is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"KASSA_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


class DatabaseFactory:
    """Fresh, empty databases for one backend; all dropped when the session ends."""

    def __init__(self, backend: str, tmp_dir: Path) -> None:
        self.backend = backend
        self.tmp_dir = tmp_dir
        self._created: list[str] = []

    async def create(self, label: str) -> str:
        """A URL to a new empty database."""
        name = f"kassa_test_{label}_{os.getpid()}_{secrets.token_hex(3)}"
        if self.backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp_dir / name}.db"
        admin = make_url(POSTGRES_URL).set(drivername="postgresql")
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        self._created.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        if not self._created:
            return
        admin = make_url(POSTGRES_URL).set(drivername="postgresql")
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            for name in self._created:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend a test runs on (each database test runs on both)."""
    name = str(request.param)
    if name == "postgres":
        require("postgres")
    return name


@pytest_asyncio.fixture(scope="session")
async def databases(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(backend, tmp_path_factory.mktemp(f"db-{backend}"))
    yield factory
    await factory.drop_all()


@pytest_asyncio.fixture
async def redis_url() -> AsyncIterator[str]:
    """A real Redis (database 15), emptied before the test."""
    require("redis")
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    await client.aclose()
    yield REDIS_URL


@pytest.fixture(scope="session")
def signing_key_pair() -> tuple[str, str]:
    """The gateway's key pair for this test session: (private PEM, public PEM)."""
    return generate_signing_key()


@pytest.fixture(scope="session")
def signer(signing_key_pair: tuple[str, str]) -> AssertionSigner:
    return AssertionSigner(signing_key_pair[0])


def assertion_header(
    signer: AssertionSigner,
    audience: str,
    *,
    owner: str = "acme",
    scopes: frozenset[str] = frozenset({"read", "write"}),
    service: str | None = None,
) -> dict[str, str]:
    """The header the gateway would add for a caller."""
    caller = Caller(key_id="key-test", owner=owner, scopes=scopes, service=service)
    return {"X-Kassa-Caller": signer.sign(caller, audience=audience)}


@asynccontextmanager
async def running(app: FastAPI, base_url: str = "http://app") -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and give an HTTP client that talks to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
