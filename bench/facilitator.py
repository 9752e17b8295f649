"""``make bench BENCH=facilitator``: Kassa's facilitator against the x402 reference facilitator.

In one run on this machine, against one Solana sandbox (``sandboxes.solana_rpc``, its slot
clock at the default 400 ms), three ways of handling the same x402 payments:

- **kassa**: ``kassa serve facilitator`` (one process), every check on: the strict layout,
  fee-payer isolation, exact amount, signatures, the replay lookups in its database
  (PostgreSQL when reachable, else SQLite), a signed simulation; settle claims the payment in
  the database before broadcasting and polls confirmation.
- **reference**: the ``x402`` package's facilitator (``bench/reference_facilitator.py``: its
  FastAPI example around ``x402Facilitator`` with the SVM exact scheme), one uvicorn process.
- **direct** (settle only): no facilitator; the bench signs as fee payer itself, sends and
  polls, at the same concurrency. It is the ceiling the sandbox sets.

Verify is loaded with wrk (one valid payload posted again and again; neither side caches a
verification) at 1 and 32 connections for ``BENCH_DURATION_S`` (default 10) seconds after a
2 s warm-up; an invalid verify or a non-2xx answer fails the run. Settle runs 32 concurrent
clients for ``BENCH_SETTLE_S`` (default 20) seconds, each building a fresh payment with the
x402 client and settling it, and counts settled and failed payments. It prints
requests/s, p50 and p99, the verify ratio kassa/reference against the goal (>= 2) and settle
throughput against direct, and saves the table under ``bench/results/``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import orjson
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.transaction import VersionedTransaction
from sqlalchemy.engine import make_url
from x402.mechanisms.svm.exact import ExactSvmClientScheme
from x402.mechanisms.svm.signers import KeypairSigner
from x402.schemas import PaymentRequirements

from bench.gateway import (
    RESULTS_DIR,
    BenchError,
    WrkResult,
    ensure_tools,
    free_port,
    run_wrk,
    running,
    wait_until_answers,
)
from sandboxes.solana_rpc import SANDBOX_USDC_2022_MINT, SANDBOX_USDC_MINT
from services.facilitator.app import MIGRATIONS
from shared.identity import AssertionSigner, Caller, generate_signing_key
from shared.migrations import upgrade_to_head

DURATION_S = float(os.environ.get("BENCH_DURATION_S", "10"))
WARMUP_S = 2.0
CONNECTIONS = (1, 32)
SETTLE_DURATION_S = float(os.environ.get("BENCH_SETTLE_S", "20"))
SETTLE_CONCURRENCY = 32
PAYERS = 8
POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
SOL = 1_000_000_000
PRICE = 10_000  # 0.01 USDC
GOAL_VERIFY_RATIO = 2.0


@dataclass(frozen=True)
class Target:
    """A facilitator under load: where it is, its fee payer, the headers it needs."""

    name: str
    url: str
    fee_payer: Keypair
    # Fresh headers for each run: a caller assertion lives at most a minute.
    headers: Callable[[], dict[str, str]]


@dataclass(frozen=True)
class SettleResult:
    settles_per_s: float
    p50_ms: float
    p99_ms: float
    count: int
    failures: int


class Chain:
    """The sandbox's faucet and the x402 client that builds payments against it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.merchant = Keypair()
        self.payers = [Keypair() for _ in range(PAYERS)]
        self._clients = [
            ExactSvmClientScheme(KeypairSigner(payer), rpc_url=url) for payer in self.payers
        ]
        self._turn = 0

    def fund(self, owner: Keypair, **body: Any) -> None:
        reply = httpx.post(
            f"{self.url}/faucet/fund", json={"owner": str(owner.pubkey()), **body}, timeout=30
        )
        if reply.status_code != 200:
            raise BenchError(f"faucet refused: {reply.text}")

    def prepare(self, fee_payers: list[Keypair]) -> None:
        self.fund(self.merchant, mint=SANDBOX_USDC_MINT, amount=0)
        for payer in self.payers:
            self.fund(payer, mint=SANDBOX_USDC_MINT, amount=1_000_000_000_000)
        for fee_payer in fee_payers:
            self.fund(fee_payer, lamports=1000 * SOL)

    def requirements(self, fee_payer: Keypair) -> dict[str, Any]:
        return {
            "scheme": "exact",
            "network": DEVNET,
            "asset": SANDBOX_USDC_MINT,
            "amount": str(PRICE),
            "payTo": str(self.merchant.pubkey()),
            "maxTimeoutSeconds": 60,
            "extra": {"feePayer": str(fee_payer.pubkey())},
        }

    def payment(self, fee_payer: Keypair) -> tuple[str, dict[str, Any]]:
        """A fresh payment (random memo) from the next payer: its transaction and the body."""
        required = self.requirements(fee_payer)
        client = self._clients[self._turn % PAYERS]
        self._turn += 1
        inner = client.create_payment_payload(PaymentRequirements.model_validate(required))
        body = {
            "x402Version": 2,
            "paymentPayload": {"x402Version": 2, "payload": inner, "accepted": required},
            "paymentRequirements": required,
        }
        return str(inner["transaction"]), body


def verify_script(workdir: Path, target: Target, body: dict[str, Any]) -> Path:
    """A wrk Lua script posting ``body`` with the target's headers."""
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = [[{orjson.dumps(body).decode()}]]",
        'wrk.headers["Content-Type"] = "application/json"',
        *(f'wrk.headers["{name}"] = "{value}"' for name, value in target.headers().items()),
    ]
    path = workdir / f"verify-{target.name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure_verify(wrk: str, workdir: Path, target: Target, chain: Chain) -> list[WrkResult]:
    _transaction, body = chain.payment(target.fee_payer)
    reply = httpx.post(f"{target.url}/verify", json=body, headers=target.headers(), timeout=30)
    if reply.status_code != 200 or not reply.json().get("isValid"):
        raise BenchError(f"{target.name} did not verify a valid payment: {reply.text}")
    results = []
    for connections in CONNECTIONS:
        script = verify_script(workdir, target, body)
        run_wrk(wrk, f"{target.url}/verify", connections, WARMUP_S, {}, script)
        script = verify_script(workdir, target, body)
        result = run_wrk(wrk, f"{target.url}/verify", connections, DURATION_S, {}, script)
        if result.failed:
            raise BenchError(f"{target.name} verify: {result}")
        print(f"  verify {target.name:<10} c={connections:<3} {_wrk_line(result)}", flush=True)
        results.append(result)
    return results


async def _settle_for(
    duration_s: float, concurrency: int, settle_one: Callable[[], Awaitable[bool]]
) -> SettleResult:
    """``concurrency`` workers settle back to back for ``duration_s``; each payment is built
    just before it is sent, as a client builds it, so none waits long enough to expire."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            if await settle_one():
                latencies.append(time.perf_counter() - start)
            else:
                failures += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies) or [0.0]
    return SettleResult(
        settles_per_s=len(latencies) / elapsed,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        count=len(latencies),
        failures=failures,
    )


def measure_settle(target: Target, chain: Chain) -> SettleResult:
    async def run() -> SettleResult:
        limits = httpx.Limits(max_connections=SETTLE_CONCURRENCY)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:

            async def settle_one() -> bool:
                _transaction, body = await asyncio.to_thread(chain.payment, target.fee_payer)
                reply = await http.post(f"{target.url}/settle", json=body, headers=target.headers())
                return reply.status_code == 200 and bool(reply.json().get("success"))

            return await _settle_for(SETTLE_DURATION_S, SETTLE_CONCURRENCY, settle_one)

    result = asyncio.run(run())
    print(f"  settle {target.name:<10} {_settle_line(result)}", flush=True)
    return result


def _fully_signed(chain: Chain, fee_payer: Keypair) -> str:
    transaction, _body = chain.payment(fee_payer)
    partial = VersionedTransaction.from_bytes(base64.b64decode(transaction))
    signature = fee_payer.sign_message(to_bytes_versioned(partial.message))
    full = VersionedTransaction.populate(partial.message, [signature, *partial.signatures[1:]])
    return base64.b64encode(bytes(full)).decode()


def measure_direct(chain: Chain, fee_payer: Keypair) -> SettleResult:
    """The sandbox's own ceiling: sign as fee payer, send, poll; no facilitator."""

    async def run() -> SettleResult:
        async with aiohttp.ClientSession() as http:

            async def rpc(method: str, params: list[Any]) -> Any:
                body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
                async with http.post(chain.url, json=body) as reply:
                    answer = await reply.json()
                if "error" in answer:
                    raise BenchError(f"direct {method}: {answer['error']}")
                return answer["result"]

            async def settle_one() -> bool:
                wire = await asyncio.to_thread(_fully_signed, chain, fee_payer)
                signature = await rpc("sendTransaction", [wire, {"encoding": "base64"}])
                while True:
                    status = (await rpc("getSignatureStatuses", [[signature]]))["value"][0]
                    level = (status or {}).get("confirmationStatus")
                    if level in ("confirmed", "finalized"):
                        return status.get("err") is None
                    await asyncio.sleep(0.05)

            return await _settle_for(SETTLE_DURATION_S, SETTLE_CONCURRENCY, settle_one)

    result = asyncio.run(run())
    print(f"  settle {'direct':<10} {_settle_line(result)}", flush=True)
    return result


def _wrk_line(result: WrkResult) -> str:
    return (
        f"{result.requests_per_s:9.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  ({result.requests} requests)"
    )


def _settle_line(result: SettleResult) -> str:
    return (
        f"{result.settles_per_s:9.1f} settles/s  p50 {result.p50_ms:7.1f} ms  "
        f"p99 {result.p99_ms:7.1f} ms  ({result.count} settled, {result.failures} failed)"
    )


def _database_url(workdir: Path) -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL database when one answers, else a SQLite file; and its cleanup."""
    name = f"kassa_bench_facilitator_{os.getpid()}"
    admin = make_url(POSTGRES_URL).set(drivername="postgresql")

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    try:
        asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError):
        return f"sqlite+aiosqlite:///{workdir / 'facilitator.db'}", lambda: None
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    return url, lambda: asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run(workdir: Path) -> tuple[str, bool]:
    wrk = ensure_tools(["wrk"])["wrk"]
    sandbox_port, kassa_port, reference_port = free_port(), free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    kassa_fee, reference_fee = Keypair(), Keypair()
    private_pem, public_pem = generate_signing_key()
    caller = Caller(key_id="bench", owner="bench", scopes=frozenset({"facilitator"}))
    signer = AssertionSigner(private_pem, ttl_s=60)
    database_url, drop_database = _database_url(workdir)
    asyncio.run(upgrade_to_head(MIGRATIONS, database_url))
    base_env = {**os.environ, "LOG_LEVEL": "WARNING", "SOLANA_RPC_URL": sandbox_url}
    kassa_env = {
        **base_env,
        "FACILITATOR_PORT": str(kassa_port),
        "FACILITATOR_DATABASE_URL": database_url,
        "FACILITATOR_FEE_PAYER_KEYS": str(kassa_fee),
        "FACILITATOR_EXTRA_MINTS": f"{SANDBOX_USDC_MINT},{SANDBOX_USDC_2022_MINT}",
        "SOLANA_NETWORK": "devnet",
        "IDENTITY_PUBLIC_KEYS": public_pem,
    }
    reference_env = {**base_env, "REFERENCE_FEE_PAYER": str(reference_fee)}
    py = sys.executable
    try:
        with (
            running(
                [py, "-m", "sandboxes.solana_rpc", "serve", "--port", str(sandbox_port)],
                workdir / "sandbox.log",
                {**base_env, "SOLANA_SANDBOX_LOG_LEVEL": "WARNING"},
            ) as sandbox,
        ):
            wait_until_answers(f"{sandbox_url}/faucet/state", sandbox, workdir / "sandbox.log")
            chain = Chain(sandbox_url)
            chain.prepare([kassa_fee, reference_fee])
            with (
                running(
                    [py, "-m", "shared.cli", "serve", "facilitator"],
                    workdir / "kassa.log",
                    kassa_env,
                ) as kassa,
                running(
                    [
                        py, "-m", "uvicorn", "bench.reference_facilitator:app",
                        "--port", str(reference_port), "--log-level", "warning",
                        "--loop", "uvloop", "--http", "httptools",
                    ],
                    workdir / "reference.log",
                    reference_env,
                ) as reference,
            ):  # fmt: skip
                kassa_url = f"http://127.0.0.1:{kassa_port}"
                reference_url = f"http://127.0.0.1:{reference_port}"
                wait_until_answers(f"{kassa_url}/ready", kassa, workdir / "kassa.log")
                wait_until_answers(
                    f"{reference_url}/supported", reference, workdir / "reference.log"
                )
                targets = [
                    Target(
                        "kassa",
                        kassa_url,
                        kassa_fee,
                        lambda: {"X-Kassa-Caller": signer.sign(caller, audience="facilitator")},
                    ),
                    Target("reference", reference_url, reference_fee, dict),
                ]
                verifies = {t.name: measure_verify(wrk, workdir, t, chain) for t in targets}
                settles = {t.name: measure_settle(t, chain) for t in targets}
                settles["direct"] = measure_direct(chain, reference_fee)
    finally:
        drop_database()
    return render(verifies, settles, database_url)


def render(
    verifies: dict[str, list[WrkResult]], settles: dict[str, SettleResult], database_url: str
) -> tuple[str, bool]:
    lines = [
        f"facilitator bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"kassa database {make_url(database_url).get_backend_name()}",
        "",
        "verify (wrk, one valid payload)",
    ]
    for name, results in verifies.items():
        for connections, result in zip(CONNECTIONS, results, strict=True):
            lines.append(f"  {name:<10} c={connections:<3} {_wrk_line(result)}")
    lines += [
        "",
        f"settle ({SETTLE_CONCURRENCY} concurrent clients for {SETTLE_DURATION_S:g} s, each "
        "payment built just before it is sent)",
    ]
    for name, settle in settles.items():
        lines.append(f"  {name:<10} {_settle_line(settle)}")
    verify_ratio = verifies["kassa"][-1].requests_per_s / verifies["reference"][-1].requests_per_s
    met = verify_ratio >= GOAL_VERIFY_RATIO
    lines += [
        "",
        f"verify throughput kassa/reference at {CONNECTIONS[-1]} connections: {verify_ratio:.2f}x "
        f"(goal >= {GOAL_VERIFY_RATIO:g}x: {'met' if met else 'MISSED'})",
        f"settle throughput kassa/reference: "
        f"{settles['kassa'].settles_per_s / settles['reference'].settles_per_s:.2f}x; "
        f"kassa/direct (the sandbox's ceiling): "
        f"{settles['kassa'].settles_per_s / settles['direct'].settles_per_s:.2f}x",
    ]
    return "\n".join(lines) + "\n", met


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kassa-bench-facilitator-") as workdir:
        try:
            report, met = run(Path(workdir))
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
    print(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"facilitator-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.txt"
    path.write_text(report)
    print(f"saved {path}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
