"""``kassa keys``, run as an operator runs it: a subprocess against the gateway's database."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.app import MIGRATIONS as GATEWAY_MIGRATIONS
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from gateway.key_cache import DISCONNECTED_TTL_S
from gateway.keys_cli import parse_duration
from gateway.schemas import ApiKeyCreate
from gateway.service import api_key_service
from shared.api_key_format import key_environment
from shared.db import Database
from shared.migrations import upgrade_to_head
from shared.settings import DEVELOPMENT_SECRET_PREFIX
from tests.conftest import DatabaseFactory, running

SECRET = DEVELOPMENT_SECRET_PREFIX + "keys-cli-test"
ROOT = Path(__file__).resolve().parents[2]
# Settings a developer's shell may carry that would point the tool elsewhere.
_LEAKY = ("DATABASE_URL", "REDIS_URL", "KASSA_BOOTSTRAP_ADMIN_KEY", "KASSA_ENV")


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def cli_environment(
    database_url: str | None, var_dir: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and not name.endswith(_LEAKY)
    }
    env["KASSA_VAR_DIR"] = str(var_dir)
    env["GATEWAY_API_KEY_SECRET"] = SECRET
    if database_url is not None:
        env["GATEWAY_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


async def kassa_keys(env: Mapping[str, str], *args: str) -> Run:
    """``python -m shared.cli keys ARGS``, as an operator would type it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.cli",
        "keys",
        *args,
        env=dict(env),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


async def make_key(database_url: str, **fields: Any) -> tuple[str, str]:
    """A key made in-process through the service (setup, not what is under test)."""
    spec = ApiKeyCreate(**{"owner": "ops", "name": "setup", "scopes": ["read"], **fields})
    database = Database(database_url)
    try:
        async with database.session() as session, session.begin():
            issued = await api_key_service.create(session, SECRET.encode(), spec, actor="test")
    finally:
        await database.dispose()
    return issued.key, issued.api_key.id


async def revoke(database_url: str, key_id: str) -> None:
    database = Database(database_url)
    try:
        async with database.session() as session, session.begin():
            await api_key_service.revoke(session, key_id, actor="test")
    finally:
        await database.dispose()


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# A service identity with every option the tool takes.
SERVICE_KEY = (
    "create",
    "--name",
    "custody to ledger",
    "--scope",
    "ledger:write, read",
    "--scope",
    "facilitator:settle",
    "--env",
    "test",
    "--expires-in",
    "30d",
    "--tier",
    "internal",
    "--service",
    "custody",
)


def assert_service_key(created: dict[str, Any]) -> None:
    record = created["api_key"]
    assert key_environment(created["key"]) == "test"
    assert record["scopes"] == ["facilitator:settle", "ledger:write", "read"]
    assert (record["service"], record["rate_limit_tier"]) == ("custody", "internal")
    lifetime = datetime.fromisoformat(record["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=29, hours=23) < lifetime <= timedelta(days=30)


def gateway_settings(
    database_url: str, signing_key: str, redis_url: str | None = None
) -> GatewaySettings:
    return GatewaySettings(
        database_url=database_url,
        redis_url=redis_url,
        identity_signing_key=signing_key,
        api_key_secret=SECRET,
        upstreams={},
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest_asyncio.fixture(scope="module")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite gateway database for the tests whose subject is not the backend."""
    path = tmp_path_factory.mktemp("keys-cli") / "gateway.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_to_head(GATEWAY_MIGRATIONS, url)
    return url


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    return tmp_path


class TestOperatorLifecycle:
    async def test_create_list_rotate_revoke_against_a_running_gateway(
        self,
        databases: DatabaseFactory,
        signing_key_pair: tuple[str, str],
        var_dir: Path,
    ) -> None:
        url = await databases.create("keys_cli")
        await upgrade_to_head(GATEWAY_MIGRATIONS, url)
        env = cli_environment(url, var_dir)
        operator, service = unique("ops"), unique("svc")
        # Independent commands run side by side: each pays the interpreter's start-up.
        created, service_key = await asyncio.gather(
            kassa_keys(env, "create", "--owner", operator, "--name", "deploy", "--scope", "admin"),
            kassa_keys(env, *SERVICE_KEY, "--owner", service, "--json"),
        )
        assert created.status == service_key.status == 0, created.stderr + service_key.stderr
        key = created.stdout.splitlines()[1].strip()
        assert key_environment(key) == "live"
        assert "shown once" in created.stdout
        assert_service_key(service_key.json())
        service_id = service_key.json()["api_key"]["id"]
        async with running(create_gateway(gateway_settings(url, signing_key_pair[0]))) as gateway:
            reply = await gateway.get("/v1/admin/api-keys", headers=bearer(key))
            assert reply.status_code == 200
            key_id = next(item["id"] for item in reply.json()["items"] if item["owner"] == operator)

            listed, table, rotated, revoked = await asyncio.gather(
                kassa_keys(env, "list", "--owner", service, "--json"),
                kassa_keys(env, "list", "--owner", service),
                kassa_keys(env, "rotate", key_id, "--overlap", "0s"),
                kassa_keys(env, "revoke", service_id),
            )
            for run in (listed, table, rotated, revoked):
                assert run.status == 0, run.stderr
            assert [item["id"] for item in listed.json()["items"]] == [service_id]
            header, *rows = table.stdout.splitlines()
            assert header.split()[:3] == ["ID", "PREFIX", "OWNER"]
            assert [row.split()[0] for row in rows] == [service_id]
            assert service_key.json()["key"] not in listed.stdout + table.stdout
            new_key = rotated.stdout.splitlines()[1].strip()
            assert key_environment(new_key) == "live"
            assert f"The old key {key_id}" in rotated.stdout
            assert "keeps working until" in rotated.stdout
            assert revoked.stdout.startswith(f"Revoked {service_id}")
            for run in (rotated, revoked):
                assert "No Redis configured: running gateways will notice within 30 s" in (
                    run.stderr
                )

            # Keys the gateway never cached show their new state at once; the old key stays
            # cached here until GATEWAY_KEY_CACHE_TTL_S, as the tool warned (no Redis).
            new = await gateway.get("/v1/admin/api-keys", headers=bearer(new_key))
            assert new.status_code == 200
            gone = await gateway.get(
                "/v1/admin/api-keys", headers=bearer(service_key.json()["key"])
            )
            assert gone.status_code == 401
            assert gone.json()["detail"] == "The API key has been revoked."


class TestRefusals:
    async def test_exit_1_for_refusals_and_2_for_bad_input_saying_why(
        self, sqlite_url: str, tmp_path: Path, var_dir: Path
    ) -> None:
        _, revoked_id = await make_key(sqlite_url)
        await revoke(sqlite_url, revoked_id)
        unknown = "01900000-0000-7000-8000-000000000000"
        env = cli_environment(sqlite_url, var_dir)
        unmigrated = cli_environment(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", var_dir)
        create = ("create", "--owner", "o", "--name", "n")
        missing, unrotatable, empty_db, bad_scope = await asyncio.gather(
            kassa_keys(env, "revoke", unknown),
            kassa_keys(env, "rotate", revoked_id),
            kassa_keys(unmigrated, "list"),
            kassa_keys(env, *create, "--scope", "read,bank:read"),
        )
        assert [run.status for run in (missing, unrotatable, empty_db)] == [1, 1, 1]
        assert bad_scope.status == 2
        for run in (missing, unrotatable, empty_db, bad_scope):
            assert run.stdout == ""
            assert run.stderr.startswith("kassa keys: ")
        assert f"There is no API key with id '{unknown}'" in missing.stderr
        assert "is revoked; only an active key can be rotated" in unrotatable.stderr
        assert "kassa migrate gateway" in empty_db.stderr
        assert "--scope: Value error, unknown scope 'bank:read'" in bad_scope.stderr

    @pytest.mark.parametrize(
        ("text", "seconds"), [("30d", 30 * 86_400), ("12h", 43_200), ("15m", 900), ("90", 90)]
    )
    def test_durations_read_as_operators_write_them(self, text: str, seconds: int) -> None:
        assert parse_duration(text) == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["soon", "1.5h", "-1d", "3y"])
    def test_other_durations_are_usage_errors(self, text: str) -> None:
        with pytest.raises(argparse.ArgumentTypeError, match="expected a duration"):
            parse_duration(text)


class TestCacheInvalidation:
    async def test_revoke_and_rotate_reach_running_gateways_through_redis(
        self,
        sqlite_url: str,
        signing_key_pair: tuple[str, str],
        redis_url: str,
        var_dir: Path,
    ) -> None:
        revoked_key, revoked_id = await make_key(sqlite_url, scopes=["admin"])
        rotated_key, rotated_id = await make_key(sqlite_url, scopes=["admin"])
        settings = gateway_settings(sqlite_url, signing_key_pair[0], redis_url=redis_url)
        async with running(create_gateway(settings)) as gateway:
            for key, key_id in ((revoked_key, revoked_id), (rotated_key, rotated_id)):
                warm = await gateway.get(f"/v1/admin/api-keys/{key_id}", headers=bearer(key))
                assert warm.status_code == 200  # now cached in the gateway's process
            env = cli_environment(sqlite_url, var_dir, {"REDIS_URL": redis_url})
            revoked, rotated = await asyncio.gather(
                kassa_keys(env, "revoke", revoked_id, "--json"),
                kassa_keys(env, "rotate", rotated_id, "--overlap", "0s", "--json"),
            )
            assert revoked.status == rotated.status == 0, revoked.stderr + rotated.stderr
            assert revoked.json()["state"] == "revoked"
            assert rotated.json()["previous"]["state"] == "expired"
            assert "notice within" not in revoked.stderr + rotated.stderr
            refusals = [
                await _poll_until_refused(gateway, revoked_key, revoked_id),
                await _poll_until_refused(gateway, rotated_key, rotated_id),
            ]
        assert [reply.status_code for reply in refusals] == [401, 401]
        assert [reply.json()["detail"] for reply in refusals] == [
            "The API key has been revoked.",
            "The API key has expired.",
        ]


async def _poll_until_refused(gateway: httpx.AsyncClient, key: str, key_id: str) -> httpx.Response:
    # Well inside the lifetime of an entry cached while the invalidation channel is down, so
    # a refusal here can only come from the published invalidation.
    deadline = time.monotonic() + DISCONNECTED_TTL_S / 2
    while True:
        reply = await gateway.get(f"/v1/admin/api-keys/{key_id}", headers=bearer(key))
        if reply.status_code == 401 or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.02)
