"""A Solana sandbox for the module, funded wallets, and a running facilitator per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from solders.keypair import Keypair

from services.facilitator.app import MIGRATIONS, create_app
from services.facilitator.config import FacilitatorSettings
from shared.identity import AssertionSigner
from shared.migrations import upgrade_to_head
from tests.conftest import DatabaseFactory, assertion_header, running
from tests.facilitator.support import facilitator_settings
from tests.solana_sandbox import SOL, USDC, USDC_2022, Sandbox, serve_sandbox


@pytest.fixture(scope="module")
def chain() -> Iterator[Sandbox]:
    """A sandbox whose slots pass every 50 ms, so confirmation takes a blink."""
    yield from serve_sandbox(slot_ms=50)


@dataclass(frozen=True)
class Wallets:
    payer: Keypair
    merchant: Keypair
    fee_payer: Keypair


@pytest.fixture
def wallets(chain: Sandbox) -> Wallets:
    """A payer holding 10 USDC of each program, a merchant with token accounts, a fee payer."""
    payer, merchant, fee_payer = Keypair(), Keypair(), Keypair()
    for mint in (USDC, USDC_2022):
        chain.fund(payer.pubkey(), mint=mint, amount=10_000_000)
        chain.fund(merchant.pubkey(), mint=mint)
    chain.fund(fee_payer.pubkey(), lamports=SOL)
    return Wallets(payer, merchant, fee_payer)


@pytest_asyncio.fixture
async def facilitator_database(databases: DatabaseFactory) -> str:
    url = await databases.create("facilitator")
    await upgrade_to_head(MIGRATIONS, url)
    return url


@dataclass
class Facilitator:
    """A running facilitator: its HTTP client (as the gateway calls it) and settings."""

    client: httpx.AsyncClient
    settings: FacilitatorSettings

    async def verify(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = await self.client.post("/verify", json=body)
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        return result

    async def settle(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = await self.client.post("/settle", json=body)
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        return result


@pytest_asyncio.fixture
async def facilitator(
    facilitator_database: str,
    chain: Sandbox,
    wallets: Wallets,
    signing_key_pair: tuple[str, str],
    signer: AssertionSigner,
) -> AsyncIterator[Facilitator]:
    settings = facilitator_settings(
        facilitator_database, chain, [wallets.fee_payer], signing_key_pair[1]
    )
    async with running(create_app(settings)) as client:
        client.headers.update(
            assertion_header(signer, "facilitator", scopes=frozenset({"facilitator"}))
        )
        yield Facilitator(client, settings)
