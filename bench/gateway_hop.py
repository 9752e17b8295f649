"""What one gateway hop costs: a service's /health called directly and through the gateway.

Starts every app the way ``make run`` does (embedded default, ports shifted by 300), drives
each target for a fixed time at 1 and 32 concurrent connections from one aiohttp client, and
prints requests/s, p50 and p99 and the gateway/direct ratios. The gateway side includes key
authentication (a database lookup per request until the key cache lands) and signing the
caller assertion; the direct side is the bare service.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp

OFFSET = 300
DURATION_S = float(os.environ.get("BENCH_SECONDS", "5"))
GATEWAY = f"http://127.0.0.1:{8000 + OFFSET}"
DIRECT = f"http://127.0.0.1:{8004 + OFFSET}/health"
VIA_GATEWAY = f"{GATEWAY}/v1/ledger/health"


async def _drive(url: str, headers: dict[str, str], connections: int) -> tuple[float, float, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + DURATION_S
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                async with session.get(url) as reply:
                    await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"{url} answered {reply.status}")
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, p99 * 1000


def _start() -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, KASSA_PORT_OFFSET=str(OFFSET), KASSA_VAR_DIR=tempfile.mkdtemp())
    env["GATEWAY_LOG_LEVEL"] = env["LEDGER_LOG_LEVEL"] = "WARNING"
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    key = ""
    for line in process.stdout:
        if "Development admin API key" in line:
            key = process.stdout.readline().strip()
        if "Ctrl-C stops every process" in line:
            return process, key
    raise RuntimeError("kassa run did not start")


def main() -> None:
    process, key = _start()
    try:
        rows = []
        for connections in (1, 32):
            direct = asyncio.run(_drive(DIRECT, {}, connections))
            gateway = asyncio.run(
                _drive(VIA_GATEWAY, {"Authorization": f"Bearer {key}"}, connections)
            )
            rows.append((connections, direct, gateway))
        print(f"{'conns':>5} {'target':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for connections, direct, gateway in rows:
            for name, (rps, p50, p99) in (("direct", direct), ("gateway", gateway)):
                print(f"{connections:>5} {name:<8} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f}")
            print(
                f"{connections:>5} ratio    gateway/direct throughput "
                f"{gateway[0] / direct[0]:.2f}, "
                f"added p50 {gateway[1] - direct[1]:.2f} ms"
            )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


if __name__ == "__main__":
    main()
