"""Building x402 payments for the facilitator's tests: the real x402 client for good ones,
solders for payments that break exactly one rule."""

from __future__ import annotations

import base64
import copy
import os
from dataclasses import dataclass, field
from typing import Any

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token.instructions import get_associated_token_address

from sandboxes.solana_rpc import SANDBOX_USDC_MINT
from services.facilitator.config import FacilitatorSettings
from tests.solana_sandbox import COMPUTE_BUDGET, DEVNET, TOKEN_PROGRAM, USDC, USDC_2022, Sandbox

MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
PRICE = 1_000_000  # 1 USDC in base units


def facilitator_settings(
    database_url: str, chain: Sandbox, fee_payers: list[Keypair], public_keys: str, **overrides: Any
) -> FacilitatorSettings:
    """Settings for a facilitator on the sandbox with the sandbox's mints allowed."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "solana_network": "devnet",
        "solana_rpc_url": chain.url,
        "fee_payer_keys": ",".join(str(keypair) for keypair in fee_payers),
        "extra_mints": ",".join(str(mint) for mint in (USDC, USDC_2022)),
        "identity_public_keys": public_keys,
        "confirm_poll_s": 0.05,
        "confirm_timeout_s": 10.0,
        "fee_payer_min_lamports": 1_000_000,
        "log_json": False,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return FacilitatorSettings(**values)


def requirements(
    pay_to: Pubkey, fee_payer: Pubkey, *, asset: str = SANDBOX_USDC_MINT, **extra: Any
) -> dict[str, Any]:
    """x402 v2 payment requirements as a resource server sends them."""
    return {
        "scheme": "exact",
        "network": DEVNET,
        "asset": asset,
        "amount": str(PRICE),
        "payTo": str(pay_to),
        "maxTimeoutSeconds": 60,
        "extra": {"feePayer": str(fee_payer), **extra},
    }


def body(transaction: str, required: dict[str, Any]) -> dict[str, Any]:
    """A v2 ``/verify`` or ``/settle`` body."""
    return {
        "x402Version": 2,
        "paymentPayload": {
            "x402Version": 2,
            "payload": {"transaction": transaction},
            "accepted": copy.deepcopy(required),
            "resource": {"url": "https://merchant.example/report"},
        },
        "paymentRequirements": copy.deepcopy(required),
    }


@dataclass
class PaymentShape:
    """How to build one payment; each field changes one thing from a valid payment."""

    compute_units: int = 20_000
    micro_lamports: int = 1
    amount: int = PRICE
    mint: Pubkey = USDC
    program: Pubkey = TOKEN_PROGRAM
    decimals: int = 6
    destination: Pubkey | None = None  # default: ATA(payTo)
    source: Pubkey | None = None  # default: ATA(payer)
    authority: Pubkey | None = None  # default: the payer
    memo: bytes | None = field(default_factory=lambda: os.urandom(16).hex().encode())
    extra_instructions: list[Instruction] = field(default_factory=list)
    fee_payer_in_transfer: bool = False
    blockhash: Hash | None = None
    compute_budget: bool = True
    sign: bool = True
    signer: Keypair | None = None  # default: the payer


def build_payment(
    chain: Sandbox, payer: Keypair, pay_to: Pubkey, fee_payer: Pubkey, shape: PaymentShape
) -> str:
    """A partially signed payment transaction (fee-payer slot empty), base64."""
    authority = shape.authority or payer.pubkey()
    source = shape.source or get_associated_token_address(payer.pubkey(), shape.mint, shape.program)
    destination = shape.destination or get_associated_token_address(
        pay_to, shape.mint, shape.program
    )
    accounts = [
        AccountMeta(source, is_signer=False, is_writable=True),
        AccountMeta(shape.mint, is_signer=False, is_writable=False),
        AccountMeta(destination, is_signer=False, is_writable=True),
        AccountMeta(authority, is_signer=True, is_writable=False),
    ]
    if shape.fee_payer_in_transfer:
        accounts.append(AccountMeta(fee_payer, is_signer=False, is_writable=False))
    data = bytes([12]) + shape.amount.to_bytes(8, "little") + bytes([shape.decimals])
    instructions = [
        Instruction(COMPUTE_BUDGET, bytes([2]) + shape.compute_units.to_bytes(4, "little"), []),
        Instruction(COMPUTE_BUDGET, bytes([3]) + shape.micro_lamports.to_bytes(8, "little"), []),
    ]
    if not shape.compute_budget:
        instructions = []
    instructions.append(Instruction(shape.program, data, accounts))
    if shape.memo is not None:
        instructions.append(Instruction(MEMO_PROGRAM, shape.memo, []))
    instructions.extend(shape.extra_instructions)
    blockhash = shape.blockhash or latest(chain)
    message = MessageV0.try_compile(fee_payer, instructions, [], blockhash)
    required = message.header.num_required_signatures
    signatures = [Signature.default()] * required
    if shape.sign:
        signer = shape.signer or payer
        keys = list(message.account_keys)
        signatures[keys.index(authority)] = signer.sign_message(to_bytes_versioned(message))
    transaction = VersionedTransaction.populate(message, signatures)
    return base64.b64encode(bytes(transaction)).decode()


def latest(chain: Sandbox) -> Hash:
    reply = chain.rpc("getLatestBlockhash", {"commitment": "confirmed"})
    return Hash.from_string(reply["result"]["value"]["blockhash"])
