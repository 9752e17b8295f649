"""Two facilitator processes sharing one PostgreSQL: fifty concurrent settles of one payment,
spread over both, broadcast once; a restarted process replays instead of paying again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from solders.keypair import Keypair

from services.facilitator.app import MIGRATIONS
from shared.identity import AssertionSigner
from shared.migrations import upgrade_to_head
from tests.conftest import DatabaseFactory, assertion_header, require
from tests.facilitator.conftest import Wallets
from tests.facilitator.test_settle import merchant_balance, payment_body
from tests.servers import free_port
from tests.solana_sandbox import USDC, USDC_2022, Sandbox


@contextmanager
def facilitator_process(
    port: int, database_url: str, chain: Sandbox, fee_payer: Keypair, public_keys: str, **env: str
) -> Iterator[str]:
    """``kassa serve facilitator`` as its own process; yields its base URL once ready."""
    environment = {
        **os.environ,
        "FACILITATOR_PORT": str(port),
        "FACILITATOR_DATABASE_URL": database_url,
        "SOLANA_RPC_URL": chain.url,
        "SOLANA_NETWORK": "devnet",
        "FACILITATOR_FEE_PAYER_KEYS": str(fee_payer),
        "FACILITATOR_EXTRA_MINTS": f"{USDC},{USDC_2022}",
        "FACILITATOR_FEE_PAYER_MIN_LAMPORTS": "0",
        "FACILITATOR_CONFIRM_POLL_S": "0.05",
        "IDENTITY_PUBLIC_KEYS": public_keys,
        "LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "serve", "facilitator"], env=environment
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, "the facilitator process exited"
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the facilitator process never became ready")
        yield url
    finally:
        process.terminate()
        process.wait(15)


def broadcasts_of(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "kassa_facilitator_rpc_calls":
            total += sum(
                sample.value
                for sample in family.samples
                if sample.name.endswith("_total") and sample.labels["method"] == "sendTransaction"
            )
    return total


@pytest.mark.parametrize("fast_path", ["postgres only", "redis in front"])
async def test_fifty_settles_across_two_processes_broadcast_once_and_survive_a_restart(
    fast_path: str,
    tmp_path: Path,
    chain: Sandbox,
    wallets: Wallets,
    signing_key_pair: tuple[str, str],
    signer: AssertionSigner,
    redis_url: str,
) -> None:
    require("postgres")  # replicas share PostgreSQL; SQLite is one process's embedded file
    databases = DatabaseFactory("postgres", tmp_path)
    database_url = await databases.create("replicas")
    await upgrade_to_head(MIGRATIONS, database_url)
    extra = {"FACILITATOR_REDIS_URL": redis_url} if fast_path == "redis in front" else {}
    headers = assertion_header(signer, "facilitator", scopes=frozenset({"facilitator"}))
    payment = payment_body(chain, wallets)
    public_keys = signing_key_pair[1]
    ports = (free_port(), free_port())
    with (
        facilitator_process(
            ports[0], database_url, chain, wallets.fee_payer, public_keys, **extra
        ) as first,
        facilitator_process(
            ports[1], database_url, chain, wallets.fee_payer, public_keys, **extra
        ) as second,
    ):
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            replies = await asyncio.gather(
                *(client.post(f"{(first, second)[n % 2]}/settle", json=payment) for n in range(50))
            )
        results = [reply.json() for reply in replies]
        assert all(result["success"] for result in results), results
        assert len({result["transaction"] for result in results}) == 1
        assert broadcasts_of(first) + broadcasts_of(second) == 1
    assert merchant_balance(chain, wallets) == 1_000_000
    with facilitator_process(
        ports[0], database_url, chain, wallets.fee_payer, public_keys, **extra
    ) as restarted:
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            replay = (await client.post(f"{restarted}/settle", json=payment)).json()
        assert replay["extra"]["replayed"] is True
        assert broadcasts_of(restarted) == 0
    assert merchant_balance(chain, wallets) == 1_000_000
    await databases.drop_all()
