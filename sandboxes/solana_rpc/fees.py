"""Transaction fees as a cluster charges them: per signature plus the prioritization fee.

LiteSVM charges only the signature fee, so the chain debits the prioritization fee itself and
reports the sum as ``meta.fee`` and from ``getFeeForMessage``. The rules follow the Solana fee
documentation (solana.com/docs/core/fees): 5000 lamports per signature, and a prioritization fee
of ``ceil(compute_unit_price_micro_lamports * compute_unit_limit / 1_000_000)``, the limit being
the requested one or 200 000 compute units per (non compute-budget) instruction, capped at
1 400 000.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.message import Message, MessageV0
from solders.pubkey import Pubkey

LAMPORTS_PER_SIGNATURE = 5_000
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
DEFAULT_UNITS_PER_INSTRUCTION = 200_000
MAX_COMPUTE_UNIT_LIMIT = 1_400_000
MICRO_LAMPORTS_PER_LAMPORT = 1_000_000
_SET_COMPUTE_UNIT_LIMIT = 2
_SET_COMPUTE_UNIT_PRICE = 3


@dataclass(frozen=True)
class ComputeBudget:
    """What a message asks of the compute-budget program."""

    unit_limit: int
    unit_price_micro_lamports: int


def compute_budget(message: Message | MessageV0) -> ComputeBudget:
    """The compute-unit limit and price the message's compute-budget instructions set."""
    keys = message.account_keys
    limit: int | None = None
    price = 0
    other_instructions = 0
    for instruction in message.instructions:
        data = bytes(instruction.data)
        if keys[instruction.program_id_index] != COMPUTE_BUDGET_PROGRAM:
            other_instructions += 1
        elif data[:1] == bytes([_SET_COMPUTE_UNIT_LIMIT]) and len(data) >= 5:
            limit = int.from_bytes(data[1:5], "little")
        elif data[:1] == bytes([_SET_COMPUTE_UNIT_PRICE]) and len(data) >= 9:
            price = int.from_bytes(data[1:9], "little")
    if limit is None:
        limit = DEFAULT_UNITS_PER_INSTRUCTION * other_instructions
    return ComputeBudget(min(limit, MAX_COMPUTE_UNIT_LIMIT), price)


def signature_fee(message: Message | MessageV0) -> int:
    """The part of the fee LiteSVM itself charges."""
    return LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures


def prioritization_fee(message: Message | MessageV0) -> int:
    """Lamports for the requested compute-unit price, rounded up."""
    budget = compute_budget(message)
    micro_lamports = budget.unit_price_micro_lamports * budget.unit_limit
    return -(-micro_lamports // MICRO_LAMPORTS_PER_LAMPORT)


def transaction_fee(message: Message | MessageV0) -> int:
    """The whole fee the fee payer is charged."""
    return signature_fee(message) + prioritization_fee(message)
