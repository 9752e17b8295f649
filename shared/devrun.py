"""``kassa run`` (``make run``): every app as a local process, ready, until Ctrl-C.

With nothing configured it uses the embedded default: a SQLite file per app under ``var/`` and
in-process rate limits. With ``DATABASE_URL`` pointing at PostgreSQL each app gets its own
database beside it (``<name>_<app>``, created if missing); with ``REDIS_URL`` the apps use it.
Development secrets (the gateway's signing key, the API-key HMAC secret) are generated once
into ``var/secrets/``; the admin key is ``KASSA_BOOTSTRAP_ADMIN_KEY`` or a new one per run.

The sandboxes (``shared.topology.SANDBOXES``, local stand-ins for outside systems) start first,
on their ports plus ``KASSA_PORT_OFFSET``, and stop last; each app finds a sandbox through the
variable the sandbox names (``SOLANA_RPC_URL``) unless that is set already.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import httpx
from solders.keypair import Keypair
from sqlalchemy.engine import make_url

from shared.api_key_format import generate_api_key
from shared.identity import generate_signing_key, public_pem_of
from shared.settings import DEVELOPMENT_SECRET_PREFIX
from shared.topology import APPS, GATEWAY, SANDBOXES, SERVICES, AppEntry, SandboxEntry

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
# Where `python -m <sandbox module>` resolves: the directory holding the top-level packages.
_PACKAGES_ROOT = Path(__file__).resolve().parents[1]

Entry = AppEntry | SandboxEntry


def _port(entry: Entry, env: Mapping[str, str]) -> int:
    return entry.port + int(env.get("KASSA_PORT_OFFSET", "0"))


def _secret_file(var_dir: Path, name: str, make: str) -> str:
    path = var_dir / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(make)
    return path.read_text()


def _derived_database_url(base_url: str | None, entry: AppEntry, var_dir: Path) -> str:
    if base_url and make_url(base_url).get_backend_name() == "postgresql":
        url = make_url(base_url)
        return url.set(database=f"{url.database}_{entry.name}").render_as_string(
            hide_password=False
        )
    return f"sqlite+aiosqlite:///{var_dir}/{entry.name}.db"


async def ensure_postgres_databases(urls: list[str]) -> None:
    """Create each PostgreSQL database that does not exist yet."""
    import asyncpg  # only needed when PostgreSQL is configured

    for raw in urls:
        url = make_url(raw)
        if url.get_backend_name() != "postgresql":
            continue
        admin = url.set(drivername="postgresql", database="postgres")
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            exists = await connection.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", url.database
            )
            if not exists:
                await connection.execute(f'CREATE DATABASE "{url.database}"')
        finally:
            await connection.close()


def database_environment(base: Mapping[str, str], var_dir: Path) -> dict[str, str]:
    """Each app's own ``<PREFIX>DATABASE_URL``: explicit ones kept, the rest derived."""
    return {
        f"{entry.env_prefix}DATABASE_URL": base.get(f"{entry.env_prefix}DATABASE_URL")
        or _derived_database_url(base.get("DATABASE_URL"), entry, var_dir)
        for entry in APPS
    }


def prepare_environment(base: Mapping[str, str], var_dir: Path) -> dict[str, str]:
    """The environment every child process gets; explicit settings in ``base`` always win."""
    env = dict(base)
    env.setdefault("KASSA_ENV", "development")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(database_environment(base, var_dir))
    for entry in APPS:
        env.setdefault(f"{entry.env_prefix}PORT", str(_port(entry, env)))
        env.setdefault(f"{entry.env_prefix}VAR_DIR", str(var_dir))
    if "GATEWAY_IDENTITY_SIGNING_KEY" not in env:
        env["GATEWAY_IDENTITY_SIGNING_KEY"] = _secret_file(
            var_dir, "gateway_signing_key.pem", generate_signing_key()[0]
        )
    env.setdefault("IDENTITY_PUBLIC_KEYS", public_pem_of(env["GATEWAY_IDENTITY_SIGNING_KEY"]))
    env.setdefault(
        "GATEWAY_API_KEY_SECRET",
        _secret_file(var_dir, "api_key_secret", DEVELOPMENT_SECRET_PREFIX + secrets.token_hex(32)),
    )
    env.setdefault("KASSA_BOOTSTRAP_ADMIN_KEY", generate_api_key("test"))
    upstreams = ",".join(
        f"{entry.gateway_prefix}=http://127.0.0.1:{_port(entry, env)}" for entry in SERVICES
    )
    env.setdefault("GATEWAY_UPSTREAMS", upstreams)
    env.setdefault(
        "FACILITATOR_FEE_PAYER_KEYS",
        _secret_file(var_dir, "facilitator_fee_payer.json", _new_solana_keypair()),
    )
    for sandbox in SANDBOXES:
        if sandbox.url_env and sandbox.url_env not in env:
            env[sandbox.url_env] = _sandbox_url(sandbox, env)
            for name, value in sandbox.app_environment:
                env.setdefault(name, value)
    return env


def _new_solana_keypair() -> str:
    """A fee-payer key for the local cluster, as solana-keygen writes it (a JSON byte array)."""
    return json.dumps(list(bytes(Keypair())))


def _sandbox_url(entry: SandboxEntry, env: Mapping[str, str]) -> str:
    return f"http://127.0.0.1:{_port(entry, env)}"


def _start(entry: AppEntry, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "shared.cli", "serve", entry.name],
        env=dict(env),
        start_new_session=True,  # Ctrl-C reaches the runner only; it stops the children in order
    )


def _start_sandbox(entry: SandboxEntry, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", entry.module, "serve", "--port", str(_port(entry, env))],
        env=dict(env),
        cwd=_PACKAGES_ROOT,
        start_new_session=True,
    )


def _wait_ready(processes: Mapping[Entry, subprocess.Popen[bytes]], env: Mapping[str, str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = dict(processes)
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for entry, process in list(pending.items()):
                if process.poll() is not None:
                    raise RuntimeError(f"{entry.name} exited with code {process.returncode}")
                try:
                    reply = client.get(f"http://127.0.0.1:{_port(entry, env)}/ready")
                except httpx.TransportError:
                    continue
                if reply.status_code == 200:
                    del pending[entry]
            if time.monotonic() > deadline:
                names = ", ".join(entry.name for entry in pending)
                raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f}s: {names}")
            time.sleep(0.2)


def stop_all(processes: Mapping[Entry, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every child, wait for them to finish in-flight work, then kill stragglers."""
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _banner(env: Mapping[str, str]) -> str:
    gateway = f"http://127.0.0.1:{_port(GATEWAY, env)}"
    lines = ["", "Kassa is running:"]
    lines += [f"  {entry.name:<12} http://127.0.0.1:{_port(entry, env)}" for entry in APPS]
    if SANDBOXES:
        lines += ["", "Sandboxes (local stand-ins for outside systems):"]
        lines += [_sandbox_line(entry, env) for entry in SANDBOXES]
    lines += [
        "",
        "Development admin API key (shown once; set KASSA_BOOTSTRAP_ADMIN_KEY to choose it):",
        f"  {env['KASSA_BOOTSTRAP_ADMIN_KEY']}",
        "",
        "Try:",
        f'  curl -H "Authorization: Bearer {env["KASSA_BOOTSTRAP_ADMIN_KEY"]}" '
        f"{gateway}/v1/ledger/health",
        f"  open {gateway}/docs",
        "",
        "Ctrl-C stops every process.",
        "",
    ]
    return "\n".join(lines)


def _sandbox_line(entry: SandboxEntry, env: Mapping[str, str]) -> str:
    url = _sandbox_url(entry, env)
    used = entry.url_env and env.get(entry.url_env) == url
    return f"  {entry.name:<12} {url}" + (f"  ({entry.url_env})" if used else "")


def _migrate(env: MutableMapping[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "shared.cli", "migrate"], env=dict(env), check=True)


def run_all(base_env: Mapping[str, str] | None = None) -> int:
    """Migrate, start every app, wait until ready, print how to call them, stop on a signal."""
    base = dict(os.environ if base_env is None else base_env)
    var_dir = Path(base.get("KASSA_VAR_DIR", "var")).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    env = prepare_environment(base, var_dir)
    asyncio.run(
        ensure_postgres_databases([env[f"{entry.env_prefix}DATABASE_URL"] for entry in APPS])
    )
    stopping = False

    def request_stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Sandboxes boot while the databases migrate; apps start once the sandboxes answer.
    sandboxes: dict[Entry, subprocess.Popen[bytes]] = {
        entry: _start_sandbox(entry, env) for entry in SANDBOXES
    }
    processes: dict[Entry, subprocess.Popen[bytes]] = {}
    try:
        _migrate(env)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        _wait_ready(sandboxes, env)
        processes.update({entry: _start(entry, env) for entry in APPS})
        _wait_ready(processes, env)
        print(_banner(env), flush=True)
        while not stopping:
            for entry, process in (*processes.items(), *sandboxes.items()):
                if process.poll() is not None:
                    print(f"{entry.name} exited with code {process.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.2)
    except RuntimeError as exc:
        print(f"kassa run: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all(processes)  # apps first: they may still call a sandbox while they drain
        stop_all(sandboxes)
    return 0
