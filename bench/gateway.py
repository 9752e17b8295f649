"""``make bench-gateway``: one small upstream directly, behind nginx and behind the gateway.

In one run on this machine the same upstream process (``bench.upstream``: uvicorn, uvloop,
httptools) is loaded with wrk three ways: directly, behind nginx (a bare reverse proxy with
upstream keep-alive) and behind the Kassa gateway doing its whole hot path: API-key
authentication, rate limiting on Redis and a signed caller assertion. The gateway runs with 1
and with 2 worker processes (``GATEWAY_WORKERS``). Each cell is a warm-up of ``WARMUP_S``
followed by ``BENCH_DURATION_S`` (default 10) seconds at 1 and at 32 connections.

It prints requests/s, p50 and p99 for each, the gateway/nginx throughput ratio at 32
connections and the p50 the gateway adds over the direct call at 1 connection, against the
goals (>= 0.75 and <= 1 ms), and saves the table under ``bench/results/``. Any non-2xx answer
or socket error during a run fails the benchmark, and the gateway must refuse a request without
a key and attach a valid signed assertion before it is measured at all.

Needs wrk and nginx (Debian packages ``wrk`` and ``nginx-light``; installed with apt-get when
running as root, otherwise reported) and Redis (``BENCH_REDIS_URL``, default
``redis://127.0.0.1:6379/14``; a private ``redis-server`` is started when nothing answers).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import redis

from bench.upstream import CALLER_PATH, PING_PATH
from shared.api_key_format import generate_api_key
from shared.identity import generate_signing_key, load_public_keys

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "10"))
WARMUP_S = 2.0
CONNECTIONS = (1, 32)
GATEWAY_WORKERS = tuple(int(n) for n in os.environ.get("BENCH_GATEWAY_WORKERS", "1,2").split(","))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# Rate limiting runs on Redis for every request but never refuses one.
AUTH_RATE_LIMIT = "100000000/1s"
GOAL_THROUGHPUT_RATIO = 0.75  # gateway / nginx requests/s at 32 connections, at least
GOAL_ADDED_P50_MS = 1.0  # gateway p50 - direct p50 at 1 connection, at most
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
GATEWAY_PREFIX = "/v1/bench"
# Debian packages that provide each tool.
PACKAGES = {"wrk": "wrk", "nginx": "nginx-light", "redis-server": "redis-server"}
APP_PREFIXES = ("GATEWAY_", "LEDGER_", "CUSTODY_", "FISCAL_", "FACILITATOR_")
UNPREFIXED = {
    "DATABASE_URL",
    "REDIS_URL",
    "LOG_LEVEL",
    "IDENTITY_PUBLIC_KEYS",
    "KASSA_BOOTSTRAP_ADMIN_KEY",
    "WEB_CONCURRENCY",
    "ALLOWED_ORIGINS",
    "PUBLIC_RATE_LIMIT",
    "AUTH_RATE_LIMIT",
    "VERIFY_RATE_LIMIT",
}


class BenchError(RuntimeError):
    """The benchmark cannot run, or a run is not valid."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int

    @property
    def failed(self) -> bool:
        return self.non_2xx > 0 or self.socket_errors > 0 or self.requests == 0


@dataclass(frozen=True)
class Row:
    """One cell of the table: a target at a connection count."""

    target: str
    connections: int
    result: WrkResult
    redis_commands_per_request: float | None = None


# ---------------------------------------------------------------------------------------------
# Tools and processes


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidate = Path("/usr/sbin") / name
    return str(candidate) if candidate.exists() else None


def _apt_install(packages: Sequence[str]) -> None:
    print(f"installing {' '.join(packages)} with apt-get", flush=True)
    command = ["apt-get", "install", "-y", "-q", *packages]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(command, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(command, env=env, check=False)


def ensure_tools(names: Sequence[str]) -> dict[str, str]:
    """The path of each tool, installing the missing ones with apt-get when running as root."""
    missing = [name for name in names if _tool(name) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install([PACKAGES[name] for name in missing])
    paths = {name: _tool(name) for name in names}
    still_missing = [name for name, path in paths.items() if path is None]
    if still_missing:
        packages = " ".join(PACKAGES[name] for name in still_missing)
        raise BenchError(
            f"missing {', '.join(still_missing)}; install them with "
            f"'sudo apt-get install -y {packages}' and run again"
        )
    return {name: path for name, path in paths.items() if path is not None}


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running(
    command: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the duration of the block, stopped with SIGTERM (then SIGKILL)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command),
            cwd=REPO,
            env=dict(env if env is not None else os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _log_tail(log_path: Path, lines: int = 30) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_answers(
    url: str, process: subprocess.Popen[bytes], log_path: Path, expect: int = 200
) -> None:
    """Poll ``url`` until it answers ``expect``; fail early if ``process`` exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchError(
                    f"{url}: the process exited with {process.returncode}:\n{_log_tail(log_path)}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get(url).status_code == expect:
                    return
            time.sleep(0.2)
    raise BenchError(f"{url} did not answer {expect} within {START_TIMEOUT_S:.0f}s")


# ---------------------------------------------------------------------------------------------
# The upstream, nginx and Redis


def upstream_command(port: int) -> list[str]:
    """uvicorn serving ``bench.upstream:app`` in one process."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.upstream:app",
        "--host=127.0.0.1",
        f"--port={port}",
        "--loop=uvloop",
        "--http=httptools",
        "--lifespan=off",
        "--no-access-log",
        "--log-level=warning",
    ]


def nginx_config(workdir: Path, port: int, upstream_port: int) -> str:
    """A bare reverse proxy for ``/v1/bench/`` with keep-alive connections to the upstream."""
    return f"""
daemon off;
worker_processes auto;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    upstream bench {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location {GATEWAY_PREFIX}/ {{
            proxy_pass http://bench/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_command(nginx: str, workdir: Path, port: int, upstream_port: int) -> list[str]:
    """nginx in the foreground on a generated configuration in ``workdir``."""
    config = workdir / "nginx.conf"
    config.write_text(nginx_config(workdir, port, upstream_port))
    return [nginx, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(config)]


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """``BENCH_REDIS_URL`` when it answers, otherwise a private redis-server for the run."""
    if _redis_answers(REDIS_URL):
        yield REDIS_URL
        return
    server = ensure_tools(["redis-server"])["redis-server"]
    port = free_port()
    command = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no"]
    log_path = workdir / "redis.log"
    with running(command, log_path):
        url = f"redis://127.0.0.1:{port}/14"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _redis_answers(url):
            if time.monotonic() > deadline:
                raise BenchError(f"redis-server did not start:\n{_log_tail(log_path)}")
            time.sleep(0.1)
        yield url


def redis_commands(url: str) -> int:
    """Commands the Redis server has processed so far (server-wide)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("stats")
    finally:
        client.close()
    return int(stats["total_commands_processed"])


# ---------------------------------------------------------------------------------------------
# The gateway


@dataclass(frozen=True)
class GatewaySetup:
    """The gateway's environment and the credentials the benchmark uses against it."""

    env: dict[str, str]
    port: int
    api_key: str
    public_pem: str


def gateway_setup(workdir: Path, upstream_port: int, redis_url: str) -> GatewaySetup:
    """A clean environment: nothing inherited from a developer's Kassa settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(APP_PREFIXES) and key not in UNPREFIXED
    }
    private_pem, public_pem = generate_signing_key()
    api_key = generate_api_key("test")
    port = free_port()
    env.update(
        {
            "KASSA_ENV": "development",
            "KASSA_VAR_DIR": str(workdir),
            "PYTHONUNBUFFERED": "1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/gateway.db",
            "GATEWAY_IDENTITY_SIGNING_KEY": private_pem,
            "GATEWAY_API_KEY_SECRET": "bench-" + secrets.token_hex(32),
            "KASSA_BOOTSTRAP_ADMIN_KEY": api_key,
            "GATEWAY_UPSTREAMS": f"bench=http://127.0.0.1:{upstream_port}",
            "REDIS_URL": redis_url,
            "AUTH_RATE_LIMIT": AUTH_RATE_LIMIT,
            "GATEWAY_LOG_LEVEL": "warning",
        }
    )
    return GatewaySetup(env=env, port=port, api_key=api_key, public_pem=public_pem)


def migrate_gateway(setup: GatewaySetup) -> None:
    """Bring the gateway's SQLite database to head."""
    command = [sys.executable, "-m", "shared.cli", "migrate", "gateway"]
    done = subprocess.run(
        command, cwd=REPO, env=setup.env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"migrating the gateway failed:\n{done.stdout}\n{done.stderr}")


def check_gateway(setup: GatewaySetup) -> None:
    """Before measuring: no key is refused, and a keyed request carries a signed assertion."""
    base = f"http://127.0.0.1:{setup.port}{GATEWAY_PREFIX}"
    authorization = {"Authorization": f"Bearer {setup.api_key}"}
    with httpx.Client(timeout=10.0) as client:
        anonymous = client.get(base + PING_PATH)
        if anonymous.status_code != 401:
            raise BenchError(f"the gateway answered {anonymous.status_code} without a key")
        keyed = client.get(base + PING_PATH, headers=authorization)
        if keyed.status_code != 200 or keyed.json() != {"ok": True}:
            raise BenchError(f"the gateway answered {keyed.status_code}: {keyed.text[:300]}")
        echoed = client.get(base + CALLER_PATH, headers=authorization)
    token = echoed.json().get("assertion") if echoed.status_code == 200 else None
    if not token:
        raise BenchError("the upstream received no caller assertion from the gateway")
    keys = list(load_public_keys(setup.public_pem).values())
    try:
        claims = jwt.decode(token, keys[0], algorithms=["EdDSA"], options={"verify_aud": False})
    except jwt.InvalidTokenError as exc:
        raise BenchError(f"the caller assertion does not verify: {exc}") from exc
    if claims.get("aud") != "bench":
        raise BenchError(f"the caller assertion is addressed to {claims.get('aud')!r}")


@contextlib.contextmanager
def gateway(setup: GatewaySetup, workers: int, workdir: Path) -> Iterator[str]:
    """The gateway with ``workers`` processes, ready and checked; yields its benchmark URL."""
    env = dict(setup.env, GATEWAY_WORKERS=str(workers))
    command = [sys.executable, "-m", "shared.cli", "serve", "gateway"]
    log_path = workdir / f"gateway-w{workers}.log"
    with running(command, log_path, env) as process:
        wait_until_answers(f"http://127.0.0.1:{setup.port}/ready", process, log_path)
        check_gateway(setup)
        yield f"http://127.0.0.1:{setup.port}{GATEWAY_PREFIX}{PING_PATH}"
        if process.poll() is not None:
            raise BenchError(f"the gateway exited during the run:\n{_log_tail(log_path)}")


# ---------------------------------------------------------------------------------------------
# wrk

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, p50, p99 (from ``--latency``) and the failures wrk reported."""
    percentiles = {
        int(match[1]): float(match[2]) * _UNIT_MS[match[3]]
        for match in _PERCENTILE.finditer(output)
    }
    rate, requests = _RATE.search(output), _REQUESTS.search(output)
    if rate is None or requests is None or set(percentiles) != {50, 99}:
        raise BenchError(f"could not read wrk's output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    return WrkResult(
        requests_per_s=float(rate[1]),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(requests[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(count) for count in errors.groups()) if errors else 0,
    )


def run_wrk(
    wrk: str,
    url: str,
    connections: int,
    duration_s: float,
    headers: Mapping[str, str],
    script: Path | None = None,
) -> WrkResult:
    """One wrk run; two threads (one at a single connection); ``script`` is a wrk Lua file."""
    command = [wrk, f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration_s:g}s"]
    command += ["--latency", "--timeout=10s"]
    if script is not None:
        command += ["-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


def measure(
    wrk: str,
    target: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    redis_url: str | None = None,
) -> list[Row]:
    """``target`` at each connection count: a warm-up, then the measured run."""
    rows: list[Row] = []
    for connections in CONNECTIONS:
        run_wrk(wrk, url, connections, WARMUP_S, headers or {})
        before = redis_commands(redis_url) if redis_url else 0
        result = run_wrk(wrk, url, connections, DURATION_S, headers or {})
        per_request = None
        if redis_url and result.requests:
            per_request = (redis_commands(redis_url) - before) / result.requests
        rows.append(Row(target, connections, result, per_request))
        print(f"  {_row_line(rows[-1])}", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# The report


def _row_line(row: Row) -> str:
    result = row.result
    redis_column = (
        f"{row.redis_commands_per_request:>9.2f}"
        if row.redis_commands_per_request is not None
        else f"{'':>9}"
    )
    line = (
        f"{row.connections:>5}  {row.target:<12} {result.requests_per_s:>9,.0f} "
        f"{result.p50_ms:>8.2f} {result.p99_ms:>8.2f} {redis_column}"
    )
    if result.failed:
        line += f"  FAILED: {result.non_2xx} non-2xx, {result.socket_errors} socket errors"
    return line


def _find(rows: Sequence[Row], target: str, connections: int) -> WrkResult:
    return next(r.result for r in rows if r.target == target and r.connections == connections)


def goal_lines(rows: Sequence[Row], workers: Sequence[int]) -> list[str]:
    """The two goals for each gateway worker count, with PASS or MISS."""
    high, low = max(CONNECTIONS), min(CONNECTIONS)
    nginx, direct = _find(rows, "nginx", high), _find(rows, "direct", low)
    lines = []
    for count in workers:
        name = f"gateway w={count}"
        ratio = _find(rows, name, high).requests_per_s / nginx.requests_per_s
        added = _find(rows, name, low).p50_ms - direct.p50_ms
        ratio_verdict = "PASS" if ratio >= GOAL_THROUGHPUT_RATIO else "MISS"
        added_verdict = "PASS" if added <= GOAL_ADDED_P50_MS else "MISS"
        lines.append(
            f"{name}: throughput gateway/nginx at {high} conns {ratio:.2f} "
            f"(goal >= {GOAL_THROUGHPUT_RATIO}) {ratio_verdict}; "
            f"added p50 over direct at {low} conn {added:.2f} ms "
            f"(goal <= {GOAL_ADDED_P50_MS:g} ms) {added_verdict}"
        )
    return lines


def _versions(tools: Mapping[str, str]) -> str:
    nginx = subprocess.run(
        [tools["nginx"], "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    wrk = subprocess.run(
        [tools["wrk"], "-v"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return f"{nginx.removeprefix('nginx version: ')}, {wrk[0].split(' [')[0] if wrk else 'wrk'}"


def render(
    rows: Sequence[Row], workers: Sequence[int], header: Sequence[str], redis_url: str
) -> str:
    """The whole report: context, the table sorted by connections, and the goals."""
    table = [
        f"{'conns':>5}  {'target':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'redis/req':>9}"
    ]
    for connections in CONNECTIONS:
        table += [_row_line(row) for row in rows if row.connections == connections]
    notes = [
        f"redis/req: commands processed by {redis_url.rsplit('/', 1)[0]} per request during the "
        "run (server-wide; 0 means rate limiting did not reach Redis)",
    ]
    return "\n".join([*header, "", *table, "", *goal_lines(rows, workers), "", *notes]) + "\n"


def _header(tools: Mapping[str, str], redis_url: str) -> list[str]:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"bench gateway, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"load average at start {load}",
        f"wrk {DURATION_S:g} s per cell after a {WARMUP_S:g} s warm-up; {_versions(tools)}",
        'upstream: bench.upstream GET /ping -> {"ok":true}, uvicorn+uvloop+httptools, 1 process',
        "nginx: worker_processes auto, upstream keepalive 64, HTTP/1.1, access_log off",
        f"gateway: Bearer API key, AUTH_RATE_LIMIT={AUTH_RATE_LIMIT} on {redis_url}, "
        "signed caller assertion, SQLite key store, log level warning",
    ]


def save(report: str) -> Path:
    """Write the report to ``bench/results/gateway-<timestamp>.txt``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"gateway-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.txt"
    path.write_text(report)
    return path


# ---------------------------------------------------------------------------------------------
# The run


def run(workdir: Path) -> tuple[str, bool]:
    """Every measurement; returns the report and whether every run was valid."""
    tools = ensure_tools(["wrk", "nginx"])
    wrk = tools["wrk"]
    upstream_port, nginx_port = free_port(), free_port()
    rows: list[Row] = []
    with redis_server(workdir) as redis_url:
        header = _header(tools, redis_url)
        print("\n".join(header), flush=True)
        upstream_log = workdir / "upstream.log"
        with running(upstream_command(upstream_port), upstream_log) as upstream:
            direct = f"http://127.0.0.1:{upstream_port}{PING_PATH}"
            wait_until_answers(direct, upstream, upstream_log)
            print("direct", flush=True)
            rows += measure(wrk, "direct", direct)
            command = nginx_command(tools["nginx"], workdir, nginx_port, upstream_port)
            nginx_log = workdir / "nginx.log"
            with running(command, nginx_log) as nginx:
                proxied = f"http://127.0.0.1:{nginx_port}{GATEWAY_PREFIX}{PING_PATH}"
                wait_until_answers(proxied, nginx, nginx_log)
                print("nginx", flush=True)
                rows += measure(wrk, "nginx", proxied)
            setup = gateway_setup(workdir, upstream_port, redis_url)
            migrate_gateway(setup)
            authorization = {"Authorization": f"Bearer {setup.api_key}"}
            for workers in GATEWAY_WORKERS:
                with gateway(setup, workers, workdir) as url:
                    print(f"gateway, {workers} worker(s)", flush=True)
                    rows += measure(wrk, f"gateway w={workers}", url, authorization, redis_url)
    report = render(rows, GATEWAY_WORKERS, header, redis_url)
    return report, not any(row.result.failed for row in rows)


def main() -> int:
    """Run the benchmark, print and save the report; non-zero if it could not run cleanly."""
    with tempfile.TemporaryDirectory(prefix="kassa-bench-") as tmp:
        try:
            report, valid = run(Path(tmp))
        except BenchError as exc:
            print(f"bench gateway: {exc}", file=sys.stderr)
            return 1
    print()
    print(report, end="")
    print(f"saved to {save(report).relative_to(REPO)}")
    if not valid:
        print("bench gateway: some runs had errors; their figures are not valid", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
