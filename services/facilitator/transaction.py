"""Reading an exact-scheme payment transaction and holding it to the scheme's rules.

Everything here is decided from the transaction's bytes and the payment terms alone, without
the chain; what only the chain can tell (balances, accounts, blockhash) is the simulation's
job. Each rule raises :class:`PaymentInvalid` with the reason code x402 clients know.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache

from solders.instruction import CompiledInstruction
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from services.facilitator.networks import (
    ASSOCIATED_TOKEN_PROGRAM,
    COMPUTE_BUDGET_PROGRAM,
    LIGHTHOUSE_PROGRAM,
    MEMO_PROGRAMS,
    TOKEN_PROGRAMS,
    Cluster,
)
from services.facilitator.reasons import UNKNOWN_OPTIONAL_INSTRUCTION, PaymentInvalid, Reason

# Solana's packet limit: a larger transaction cannot be sent, so it cannot be a payment.
MAX_TRANSACTION_BYTES = 1232
SET_COMPUTE_UNIT_LIMIT = 2
SET_COMPUTE_UNIT_PRICE = 3
TRANSFER_CHECKED = 12
_DEFAULT_SIGNATURE = Signature.default()


@dataclass(frozen=True)
class PaymentTerms:
    """What the resource server asked for (the payment requirements), in domain types."""

    x402_version: int
    cluster: Cluster
    asset: str
    amount: int
    pay_to: str
    max_timeout_seconds: int
    fee_payer: str
    memo: str | None


@dataclass(frozen=True)
class Limits:
    """The facilitator's caps, from configuration."""

    max_compute_unit_limit: int
    max_compute_unit_price_micro_lamports: int


@dataclass(frozen=True)
class PaymentTransaction:
    """A decoded payment transaction that passed every static rule."""

    transaction: VersionedTransaction
    message_bytes: bytes  # what every signer signs
    message_hash: str  # hex SHA-256 of the message: the payment's identity
    fee_payer: Pubkey
    compute_unit_limit: int
    compute_unit_price: int
    token_program: Pubkey
    source: Pubkey
    mint: Pubkey
    destination: Pubkey
    authority: Pubkey
    amount: int
    memo: str | None

    @property
    def payer(self) -> str:
        return str(self.authority)


def decode_transaction(encoded: str) -> VersionedTransaction:
    """Base64 wire bytes to a transaction; anything else is ``..._could_not_be_decoded``."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        if not raw or len(raw) > MAX_TRANSACTION_BYTES:
            raise ValueError(f"{len(raw)} bytes")
        transaction = VersionedTransaction.from_bytes(raw)
        transaction.sanitize()
    except Exception as exc:  # solders raises its own error types for bad bytes
        raise PaymentInvalid(
            Reason.DECODE_FAILED, f"payload.transaction is not a base64 Solana transaction: {exc}"
        ) from exc
    return transaction


def message_hash_of(message: Message | MessageV0) -> str:
    """The payment's identity: the fee-payer signature slot is malleable, the message is not."""
    return hashlib.sha256(to_bytes_versioned(message)).hexdigest()


@lru_cache(maxsize=4096)
def associated_token_address(owner: str, mint: str, token_program: Pubkey) -> Pubkey:
    """ATA(owner, mint) under ``token_program``; cached: the derivation hashes in a loop."""
    address, _bump = Pubkey.find_program_address(
        [bytes(Pubkey.from_string(owner)), bytes(token_program), bytes(Pubkey.from_string(mint))],
        ASSOCIATED_TOKEN_PROGRAM,
    )
    return address


def inspect_payment(
    transaction: VersionedTransaction,
    terms: PaymentTerms,
    limits: Limits,
    managed_fee_payers: frozenset[str],
) -> PaymentTransaction:
    """Apply every static rule of the exact scheme, in the order the spec lists them."""
    message = transaction.message
    _refuse_lookup_tables(message)
    keys = list(message.account_keys)
    fee_payer = keys[0]
    if str(fee_payer) != terms.fee_payer:
        raise PaymentInvalid(
            Reason.FEE_PAYER_MISMATCH,
            f"the transaction's fee payer {fee_payer} is not extra.feePayer {terms.fee_payer}",
        )
    instructions = list(message.instructions)
    if not 3 <= len(instructions) <= 6:
        raise PaymentInvalid(
            Reason.INSTRUCTION_COUNT, f"{len(instructions)} instructions; 3 to 6 are allowed"
        )
    limit = _compute_unit_limit(keys, instructions[0], limits)
    price = _compute_unit_price(keys, instructions[1], limits)
    transfer = _transfer_checked(keys, instructions[2])
    payer = str(transfer.authority)
    memo = _optional_instructions(keys, instructions[3:], terms, payer)
    _fee_payer_isolated(keys, instructions, transfer, managed_fee_payers, payer)
    _transfer_matches_terms(transfer, terms, payer)
    message_bytes = to_bytes_versioned(message)
    _signatures_valid(transaction, keys, message_bytes, transfer.authority, payer)
    return PaymentTransaction(
        transaction=transaction,
        message_bytes=message_bytes,
        message_hash=hashlib.sha256(message_bytes).hexdigest(),
        fee_payer=fee_payer,
        compute_unit_limit=limit,
        compute_unit_price=price,
        token_program=transfer.program,
        source=transfer.source,
        mint=transfer.mint,
        destination=transfer.destination,
        authority=transfer.authority,
        amount=transfer.amount,
        memo=memo,
    )


@dataclass(frozen=True)
class _Transfer:
    program: Pubkey
    source: Pubkey
    mint: Pubkey
    destination: Pubkey
    authority: Pubkey
    authority_index: int
    amount: int


def _refuse_lookup_tables(message: Message | MessageV0) -> None:
    # Accounts loaded from a lookup table are invisible to the checks below (the fee payer
    # could hide in one), so a payment must name every account in the message itself.
    if isinstance(message, MessageV0) and message.address_table_lookups:
        raise PaymentInvalid(
            Reason.ADDRESS_LOOKUP_TABLES, "address lookup tables are not allowed in a payment"
        )


def _compute_budget_value(
    keys: list[Pubkey], instruction: CompiledInstruction, discriminator: int, width: int
) -> int | None:
    """The value a well-formed ComputeBudget instruction sets, or None when malformed."""
    data = bytes(instruction.data)
    if (
        keys[instruction.program_id_index] != COMPUTE_BUDGET_PROGRAM
        or len(data) != 1 + width
        or data[0] != discriminator
        or bytes(instruction.accounts)
    ):
        return None
    return int.from_bytes(data[1:], "little")


def _compute_unit_limit(
    keys: list[Pubkey], instruction: CompiledInstruction, limits: Limits
) -> int:
    units = _compute_budget_value(keys, instruction, SET_COMPUTE_UNIT_LIMIT, 4)
    if units is None:
        raise PaymentInvalid(
            Reason.COMPUTE_LIMIT, "instruction 1 must be ComputeBudget SetComputeUnitLimit"
        )
    if units > limits.max_compute_unit_limit:
        raise PaymentInvalid(
            Reason.COMPUTE_LIMIT_TOO_HIGH,
            f"compute unit limit {units} exceeds {limits.max_compute_unit_limit}",
        )
    return units


def _compute_unit_price(
    keys: list[Pubkey], instruction: CompiledInstruction, limits: Limits
) -> int:
    micro_lamports = _compute_budget_value(keys, instruction, SET_COMPUTE_UNIT_PRICE, 8)
    if micro_lamports is None:
        raise PaymentInvalid(
            Reason.COMPUTE_PRICE, "instruction 2 must be ComputeBudget SetComputeUnitPrice"
        )
    if micro_lamports > limits.max_compute_unit_price_micro_lamports:
        raise PaymentInvalid(
            Reason.COMPUTE_PRICE_TOO_HIGH,
            f"compute unit price {micro_lamports} micro-lamports exceeds "
            f"{limits.max_compute_unit_price_micro_lamports}",
        )
    return micro_lamports


def _transfer_checked(keys: list[Pubkey], instruction: CompiledInstruction) -> _Transfer:
    program = keys[instruction.program_id_index]
    data = bytes(instruction.data)
    accounts = bytes(instruction.accounts)
    if program not in TOKEN_PROGRAMS:
        raise PaymentInvalid(
            Reason.NO_TRANSFER_INSTRUCTION,
            "instruction 3 must be TransferChecked of SPL Token or Token-2022",
        )
    if len(data) != 10 or data[0] != TRANSFER_CHECKED or len(accounts) != 4:
        raise PaymentInvalid(
            Reason.NO_TRANSFER_INSTRUCTION,
            "instruction 3 must be TransferChecked(source, mint, destination, authority)",
        )
    source, mint, destination, authority = (keys[index] for index in accounts)
    return _Transfer(
        program=program,
        source=source,
        mint=mint,
        destination=destination,
        authority=authority,
        authority_index=accounts[3],
        amount=int.from_bytes(data[1:9], "little"),
    )


def _optional_instructions(
    keys: list[Pubkey], instructions: list[CompiledInstruction], terms: PaymentTerms, payer: str
) -> str | None:
    memos: list[bytes] = []
    for position, instruction in enumerate(instructions):
        program = keys[instruction.program_id_index]
        if program in MEMO_PROGRAMS:
            memos.append(bytes(instruction.data))
        elif program != LIGHTHOUSE_PROGRAM:
            raise PaymentInvalid(
                UNKNOWN_OPTIONAL_INSTRUCTION[position],
                f"instruction {position + 4} calls {program}; only Memo or Lighthouse may follow",
                payer,
            )
    if len(memos) > 1 or (terms.memo is not None and len(memos) != 1):
        expected = "exactly one" if terms.memo is not None else "at most one"
        raise PaymentInvalid(
            Reason.MEMO_COUNT, f"{len(memos)} memo instructions; {expected} allowed", payer
        )
    if not memos:
        return None
    try:
        memo = memos[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PaymentInvalid(Reason.MEMO_MISMATCH, "the memo is not UTF-8", payer) from exc
    if terms.memo is not None and memo != terms.memo:
        raise PaymentInvalid(Reason.MEMO_MISMATCH, "the memo differs from extra.memo", payer)
    return memo


def _fee_payer_isolated(
    keys: list[Pubkey],
    instructions: list[CompiledInstruction],
    transfer: _Transfer,
    managed_fee_payers: frozenset[str],
    payer: str,
) -> None:
    if payer in managed_fee_payers or str(transfer.source) in managed_fee_payers:
        raise PaymentInvalid(
            Reason.FEE_PAYER_TRANSFERRING,
            "a facilitator fee payer is the transfer's authority or source",
            payer,
        )
    for position, instruction in enumerate(instructions):
        # Index 0 is the fee payer: no instruction may touch it, whatever the program.
        if 0 in bytes(instruction.accounts):
            raise PaymentInvalid(
                Reason.FEE_PAYER_IN_INSTRUCTION,
                f"the fee payer appears in the accounts of instruction {position + 1}",
                payer,
            )


def _transfer_matches_terms(transfer: _Transfer, terms: PaymentTerms, payer: str) -> None:
    if str(transfer.mint) != terms.asset:
        raise PaymentInvalid(
            Reason.MINT_MISMATCH, f"the transfer moves {transfer.mint}, not {terms.asset}", payer
        )
    expected = associated_token_address(terms.pay_to, terms.asset, transfer.program)
    if transfer.destination != expected:
        raise PaymentInvalid(
            Reason.RECIPIENT_MISMATCH,
            f"the destination {transfer.destination} is not the associated token account "
            f"{expected} of payTo",
            payer,
        )
    if transfer.amount < terms.amount:
        raise PaymentInvalid(
            Reason.AMOUNT_INSUFFICIENT,
            f"the transfer pays {transfer.amount}; {terms.amount} is required",
            payer,
        )
    if transfer.amount > terms.amount:
        raise PaymentInvalid(
            Reason.AMOUNT_EXCEEDS,
            f"the transfer pays {transfer.amount}; exactly {terms.amount} is required",
            payer,
        )


def _signatures_valid(
    transaction: VersionedTransaction,
    keys: list[Pubkey],
    message_bytes: bytes,
    authority: Pubkey,
    payer: str,
) -> None:
    required = transaction.message.header.num_required_signatures
    signatures = list(transaction.signatures)
    if len(signatures) != required or keys.index(authority) >= required:
        raise PaymentInvalid(
            Reason.SIGNATURE_MISSING, "the transfer authority has not signed", payer
        )
    # Slot 0 is the facilitator's to fill; every other signer must have signed already.
    for index in range(1, required):
        signature = signatures[index]
        if signature == _DEFAULT_SIGNATURE:
            raise PaymentInvalid(
                Reason.SIGNATURE_MISSING, f"signer {keys[index]} has not signed", payer
            )
        if not signature.verify(keys[index], message_bytes):
            raise PaymentInvalid(
                Reason.SIGNATURE_INVALID, f"the signature of {keys[index]} is invalid", payer
            )
