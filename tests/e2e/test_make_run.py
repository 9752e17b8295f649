"""``kassa run`` (what ``make run`` calls) brings every app up, reachable through the gateway,
and Ctrl-C stops them all."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from shared.topology import APPS, SERVICES
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.e2e

STARTUP_TIMEOUT_S = 120


def _launch(env: dict[str, str]) -> tuple[subprocess.Popen[str], str, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    lines: list[str] = []
    key = ""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Development admin API key" in line:
            key = process.stdout.readline().strip()
        if "Ctrl-C stops every process" in line:
            return process, key, lines
    process.kill()
    raise AssertionError("kassa run did not come up:\n" + "".join(lines[-40:]))


def _drop_databases(prefix: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        admin = make_url(POSTGRES_URL).set(drivername="postgresql", database="postgres")
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            names = await connection.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", prefix + "%"
            )
            for row in names:
                await connection.execute(f'DROP DATABASE IF EXISTS "{row[0]}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


@pytest.fixture
def run_env(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GATEWAY_", "LEDGER_", "CUSTODY_", "FISCAL_", "FACILITATOR_"))
        and key not in {"DATABASE_URL", "REDIS_URL", "KASSA_BOOTSTRAP_ADMIN_KEY"}
    }
    env["KASSA_VAR_DIR"] = str(tmp_path / "var")
    env["KASSA_PORT_OFFSET"] = str(200 + (os.getpid() % 50) * 10)
    database_prefix = f"kassa_e2e_{secrets.token_hex(3)}"
    if backend == "postgres":
        env["DATABASE_URL"] = (
            make_url(POSTGRES_URL)
            .set(database=database_prefix)
            .render_as_string(hide_password=False)
        )
    yield env
    if backend == "postgres":
        _drop_databases(database_prefix)


class TestMakeRun:
    def test_every_service_answers_through_the_gateway_and_ctrl_c_stops_all(
        self, run_env: dict[str, str]
    ) -> None:
        offset = int(run_env["KASSA_PORT_OFFSET"])
        process, key, lines = _launch(run_env)
        try:
            assert key.startswith("kas_test_"), "".join(lines[-20:])
            gateway = f"http://127.0.0.1:{8000 + offset}"
            with httpx.Client(base_url=gateway, timeout=10) as client:
                for entry in SERVICES:
                    reply = client.get(
                        f"/v1/{entry.gateway_prefix}/health",
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    assert reply.status_code == 200, (entry.name, reply.text)
                    assert reply.json() == {"status": "ok"}
                    unauthorised = client.get(f"/v1/{entry.gateway_prefix}/health")
                    assert unauthorised.status_code == 401
                for entry in APPS:
                    ready = httpx.get(f"http://127.0.0.1:{entry.port + offset}/ready", timeout=5)
                    assert ready.json()["status"] == "ready", (entry.name, ready.text)
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=60)
        assert code == 0
        for entry in APPS:
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{entry.port + offset}/health", timeout=1)
