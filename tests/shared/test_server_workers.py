"""``<P>WORKERS``: several processes serve one port, drain together and stop together.

Each test starts ``python -m shared.cli serve ledger_fee`` for real (on a migrated SQLite file)
and asks the kernel which process holds the server end of each connection, so a test passes
only when the worker processes themselves accepted the connections.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.ledger_fee.app import MIGRATIONS as LEDGER_MIGRATIONS
from services.ledger_fee.config import LedgerSettings
from shared.migrations import upgrade_to_head

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 15.0
DRAIN_S = 1.0
GRACEFUL_S = 3.0
# Enough fresh connections that two idle workers both take some (measured: about 20 each).
CONNECTIONS = 40

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads process and socket tables in /proc"
)


@dataclass
class Served:
    """A ``kassa serve`` process and the port it serves on."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _server_socket_inode(port: int, client_port: int) -> str:
    """The inode of the server end of the connection from ``client_port`` to ``port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if local_port == port and remote_port == client_port:
            return fields[9]
    raise AssertionError(f"no server socket for the connection from port {client_port}")


def socket_owner(inode: str, candidates: list[int]) -> int | None:
    """Which of ``candidates`` holds the socket ``inode`` open."""
    target = f"socket:[{inode}]"
    for pid in candidates:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == target:
                    return pid
            except OSError:  # closed while we looked
                continue
    return None


@dataclass(frozen=True)
class Reply:
    """One answer read over a new connection, and the process that accepted the connection."""

    status: int
    body: bytes
    owner: int | None


def _read_reply(client: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(body) < length:
        chunk = client.recv(4096)
        assert chunk, f"connection closed after {body!r}"
        body += chunk
    return int(lines[0].split()[1]), body


def get_over_fresh_connection(port: int, path: str, candidates: list[int]) -> Reply:
    """GET ``path`` on a new connection, noting which of ``candidates`` accepted it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        status, body = _read_reply(client)
        inode = _server_socket_inode(port, client.getsockname()[1])
        return Reply(status, body, socket_owner(inode, candidates))


@pytest.fixture
def ledger_env(tmp_path: Path, signing_key_pair: tuple[str, str]) -> dict[str, str]:
    """A clean environment for ledger_fee with two workers on a free port."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LEDGER_", "KASSA_"))
        and key not in {"WEB_CONCURRENCY", "DATABASE_URL", "REDIS_URL", "LOG_LEVEL"}
    }
    env.update(
        {
            "KASSA_VAR_DIR": str(tmp_path),
            "LEDGER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger_fee.db'}",
            "LEDGER_IDENTITY_PUBLIC_KEYS": signing_key_pair[1],
            "LEDGER_PORT": str(_free_port()),
            "LEDGER_SHUTDOWN_DRAIN_S": str(DRAIN_S),
            "LEDGER_GRACEFUL_TIMEOUT_S": str(GRACEFUL_S),
            "LEDGER_LOG_LEVEL": "WARNING",
            "LEDGER_WORKERS": "2",
        }
    )
    return env


@pytest.fixture
async def migrated_env(ledger_env: dict[str, str]) -> dict[str, str]:
    """``ledger_env`` with its SQLite database migrated to head."""
    await upgrade_to_head(LEDGER_MIGRATIONS, ledger_env["LEDGER_DATABASE_URL"])
    return ledger_env


def _wait_ready(served: Served, workers: int) -> None:
    """Until every worker (or the process itself, with one) has answered /ready with 200."""
    deadline = time.monotonic() + START_TIMEOUT_S
    ready: set[int | None] = set()
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            code = served.process.returncode
            raise AssertionError(f"serve exited with {code}:\n{served.output()}")
        serving = children(served.process.pid) if workers > 1 else [served.process.pid]
        if len(serving) == workers:
            try:
                reply = get_over_fresh_connection(served.port, "/ready", serving)
            except OSError:  # not listening yet
                reply = None
            if reply is not None and reply.status == 200:
                ready.add(reply.owner)
            if ready == set(serving):
                return
        time.sleep(0.05)
    raise AssertionError(f"not ready within {START_TIMEOUT_S}s:\n{served.output()}")


@pytest.fixture
def serve(migrated_env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    """``kassa serve ledger_fee`` with the environment's worker count, ready."""
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "serve", "ledger_fee"],
            env=migrated_env,
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, int(migrated_env["LEDGER_PORT"]), log)
    workers = int(migrated_env["LEDGER_WORKERS"])
    try:
        _wait_ready(served, workers)
        yield served
    finally:
        if process.poll() is None:
            for pid in children(process.pid):
                os.kill(pid, signal.SIGKILL)
            process.kill()
        process.wait(timeout=10)


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def _wait_draining(port: int) -> None:
    deadline = time.monotonic() + DRAIN_S
    while httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code != 503:
        assert time.monotonic() < deadline, "/ready never turned 503"
        time.sleep(0.02)


class TestTwoWorkers:
    def test_both_workers_serve_then_drain_and_all_exit_0_on_sigterm(self, serve: Served) -> None:
        workers = children(serve.process.pid)
        assert len(workers) == 2
        replies = [
            get_over_fresh_connection(serve.port, "/health", [serve.process.pid, *workers])
            for _ in range(CONNECTIONS)
        ]
        assert {(reply.status, reply.body) for reply in replies} == {(200, b'{"status":"ok"}')}
        owners = [reply.owner for reply in replies]
        assert set(owners) == set(workers), owners  # both workers, never the parent

        serve.process.send_signal(signal.SIGTERM)
        _wait_draining(serve.port)
        time.sleep(0.05)  # the parent signals the workers one after the other
        # Within the drain every worker still accepts, and its /ready says it is draining.
        draining: set[int | None] = set()
        for _ in range(CONNECTIONS):
            reply = get_over_fresh_connection(serve.port, "/ready", workers)
            assert reply.status == 503, reply
            assert b'"status":"draining"' in reply.body
            draining.add(reply.owner)
            if draining == set(workers):
                break
        assert draining == set(workers)
        code = serve.process.wait(timeout=DRAIN_S + GRACEFUL_S + 5)
        assert code == 0, serve.output()
        assert all(_gone(pid) for pid in workers)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{serve.port}/health", timeout=1)


class TestWorkerCrash:
    @pytest.fixture
    def migrated_env(self, migrated_env: dict[str, str]) -> dict[str, str]:
        return dict(migrated_env, LEDGER_SHUTDOWN_DRAIN_S="0")

    def test_a_crashed_worker_stops_the_others_and_fails_the_parent(self, serve: Served) -> None:
        crashed, survivor = children(serve.process.pid)
        os.kill(crashed, signal.SIGKILL)
        code = serve.process.wait(timeout=DRAIN_S + GRACEFUL_S + 5)
        assert code != 0
        assert _gone(survivor)


class TestOneWorker:
    @pytest.fixture
    def migrated_env(self, migrated_env: dict[str, str]) -> dict[str, str]:
        return dict(migrated_env, LEDGER_WORKERS="1")

    def test_serves_in_the_process_itself_as_before(self, serve: Served) -> None:
        assert children(serve.process.pid) == []
        reply = get_over_fresh_connection(serve.port, "/health", [serve.process.pid])
        assert reply.owner == serve.process.pid
        serve.process.send_signal(signal.SIGTERM)
        _wait_draining(serve.port)
        # uvicorn re-raises the signal once it has stopped, as it always has here.
        assert serve.process.wait(timeout=DRAIN_S + GRACEFUL_S + 5) == -signal.SIGTERM


class TestWorkersSetting:
    def test_defaults_to_one(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
        monkeypatch.delenv("LEDGER_WORKERS", raising=False)
        assert LedgerSettings().workers == 1

    def test_web_concurrency_when_the_prefixed_name_is_unset(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("WEB_CONCURRENCY", "3")
        monkeypatch.delenv("LEDGER_WORKERS", raising=False)
        assert LedgerSettings().workers == 3

    def test_the_prefixed_name_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WEB_CONCURRENCY", "3")
        monkeypatch.setenv("LEDGER_WORKERS", "2")
        assert LedgerSettings().workers == 2

    def test_zero_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LEDGER_WORKERS", "0")
        with pytest.raises(ValueError, match="greater than or equal to 1"):
            LedgerSettings()
