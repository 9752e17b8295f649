"""A Solana sandbox on a real port for tests, and the transactions tests build against it.

Shared by the sandbox's own tests and the facilitator's: one way to start it, fund wallets
through its faucet, and build SPL payments with solders.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)
from spl.token.models import TransferCheckedParams

from sandboxes.solana_rpc import SANDBOX_USDC_2022_MINT, SANDBOX_USDC_MINT
from sandboxes.solana_rpc.app import create_app
from sandboxes.solana_rpc.base58 import b58encode
from sandboxes.solana_rpc.config import SandboxSettings
from tests.servers import free_port, served

USDC = Pubkey.from_string(SANDBOX_USDC_MINT)
USDC_2022 = Pubkey.from_string(SANDBOX_USDC_2022_MINT)
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
COMPUTE_BUDGET = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
SOL = 1_000_000_000
ATA_RENT = 2_039_280  # rent-exempt minimum of a 165-byte SPL token account
DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"


# -- running sandboxes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sandbox:
    """A sandbox on a real port, and the faucet calls tests make."""

    url: str

    def fund(
        self, owner: Pubkey, lamports: int = 0, mint: Pubkey | None = None, amount: int = 0
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"owner": str(owner), "lamports": lamports, "amount": amount}
        if mint is not None:
            body["mint"] = str(mint)
        reply = httpx.post(f"{self.url}/faucet/fund", json=body, timeout=10)
        assert reply.status_code == 200, reply.text
        funding: dict[str, Any] = reply.json()
        return funding

    def advance(self, slots: int) -> int:
        reply = httpx.post(f"{self.url}/faucet/advance", json={"slots": slots}, timeout=10)
        assert reply.status_code == 200, reply.text
        return int(reply.json()["slot"])

    def rpc(self, method: str, *params: Any) -> dict[str, Any]:
        """One raw JSON-RPC call; the whole reply (``result`` or ``error``)."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        reply: dict[str, Any] = httpx.post(self.url, json=body, timeout=10).json()
        return reply


def serve_sandbox(slot_ms: int) -> Iterator[Sandbox]:
    """A sandbox on a free port whose slots pass every ``slot_ms`` (0: only on /faucet/advance)."""
    port = free_port()
    settings = SandboxSettings(port=port, slot_ms=slot_ms, log_level="WARNING")
    with served(create_app(settings), port) as url:
        yield Sandbox(url)


# -- transactions ---------------------------------------------------------------------------


def signed_transaction(
    payer: Keypair, instructions: list[Instruction], blockhash: Hash, *others: Keypair
) -> VersionedTransaction:
    message = MessageV0.try_compile(payer.pubkey(), instructions, [], blockhash)
    return VersionedTransaction(message, [payer, *others])


def compute_budget(units: int, micro_lamports: int) -> list[Instruction]:
    return [
        Instruction(COMPUTE_BUDGET, bytes([2]) + units.to_bytes(4, "little"), []),
        Instruction(COMPUTE_BUDGET, bytes([3]) + micro_lamports.to_bytes(8, "little"), []),
    ]


def token_payment(
    sender: Keypair, recipient: Pubkey, mint: Pubkey, program: Pubkey, amount: int
) -> list[Instruction]:
    """Create the recipient's ATA if needed, then TransferChecked ``amount`` (6 decimals)."""
    params = TransferCheckedParams(
        program_id=program,
        source=get_associated_token_address(sender.pubkey(), mint, program),
        mint=mint,
        dest=get_associated_token_address(recipient, mint, program),
        owner=sender.pubkey(),
        amount=amount,
        decimals=6,
    )
    create = create_idempotent_associated_token_account(sender.pubkey(), recipient, mint, program)
    return [create, transfer_checked(params)]


def funded_wallet(sandbox: Sandbox, mint: Pubkey = USDC, amount: int = 10_000_000) -> Keypair:
    wallet = Keypair()
    sandbox.fund(wallet.pubkey(), lamports=SOL, mint=mint, amount=amount)
    return wallet


def latest_blockhash(sandbox: Sandbox) -> Hash:
    reply = sandbox.rpc("getLatestBlockhash", {"commitment": "processed"})
    return Hash.from_string(reply["result"]["value"]["blockhash"])


def send_raw(
    sandbox: Sandbox, tx: VersionedTransaction, encoding: str = "base64", **config: Any
) -> dict[str, Any]:
    wire = bytes(tx)
    encoded = base64.b64encode(wire).decode() if encoding == "base64" else b58encode(wire)
    return sandbox.rpc("sendTransaction", encoded, {"encoding": encoding, **config})


def token_amount(sandbox: Sandbox, owner: Pubkey, mint: Pubkey, program: Pubkey) -> int:
    account = get_associated_token_address(owner, mint, program)
    reply = sandbox.rpc("getTokenAccountBalance", str(account), {"commitment": "processed"})
    return int(reply["result"]["value"]["amount"])
