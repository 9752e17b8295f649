"""Accounts and transactions in the JSON shapes of the Solana RPC API.

Shapes follow solana.com/docs/rpc (getAccountInfo, getTransaction, simulateTransaction) and
the "JSON structures" page: an account is ``{"data", "executable", "lamports", "owner",
"rentEpoch", "space"}`` with ``data`` as ``["<b64>", "base64"]``, a base58 string ("binary"),
``["<b58>", "base58"]`` or the parsed object; a transaction with status meta is ``{"slot",
"blockTime", "transaction", "meta", "version"?}`` where ``transaction`` is the JSON message
(``json``), the message with parsed instructions and annotated keys (``jsonParsed``) or the
wire bytes (``base64``/``base58``).
"""

from __future__ import annotations

import base64
from typing import Any, cast

from solders.account import Account
from solders.instruction import CompiledInstruction
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import InnerInstruction

from sandboxes.solana_rpc.base58 import b58encode
from sandboxes.solana_rpc.chain import TransactionRecord
from sandboxes.solana_rpc.errors import invalid_params, transaction_error_json
from sandboxes.solana_rpc.instructions import parsed_instruction
from sandboxes.solana_rpc.tokens import DecimalsLookup, parsed_account_data

# Rent is no longer collected; nodes report every account as exempt with u64::MAX.
RENT_EXEMPT_EPOCH = 2**64 - 1
MAX_BASE58_BYTES = 128
ACCOUNT_ENCODINGS = frozenset({"binary", "base58", "base64", "jsonParsed"})
TRANSACTION_ENCODINGS = frozenset({"json", "jsonParsed", "base58", "base64"})

MessageAny = Message | MessageV0


def _sliced(data: bytes, data_slice: dict[str, Any] | None) -> bytes:
    if not data_slice:
        return data
    offset, length = int(data_slice.get("offset", 0)), int(data_slice.get("length", 0))
    return data[offset : offset + length]


def _binary_data(data: bytes, encoding: str) -> Any:
    if encoding == "base64":
        return [base64.b64encode(data).decode(), "base64"]
    if len(data) > MAX_BASE58_BYTES:
        raise invalid_params(
            f"Encoded binary (base 58) data should be less than {MAX_BASE58_BYTES} bytes, please "
            "use Base64 encoding."
        )
    encoded = b58encode(data)
    return encoded if encoding == "binary" else [encoded, "base58"]


def encode_account(
    account: Account,
    encoding: str,
    data_slice: dict[str, Any] | None,
    decimals_of: DecimalsLookup,
) -> dict[str, Any]:
    """One account as the RPC API shows it; jsonParsed falls back to base64 when unparsed."""
    raw = bytes(account.data)
    data: Any = None
    if encoding == "jsonParsed" and not data_slice:
        data = parsed_account_data(account, decimals_of)
    if data is None:
        binary = "base64" if encoding == "jsonParsed" else encoding
        data = _binary_data(_sliced(raw, data_slice), binary)
    return {
        "data": data,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": RENT_EXEMPT_EPOCH,
        "space": len(raw),
    }


def _is_writable(message: MessageAny, index: int) -> bool:
    """Writable per the header, except invoked programs, which the runtime demotes."""
    header = message.header
    invoked = {instruction.program_id_index for instruction in message.instructions}
    if index in invoked:
        return False
    if index < header.num_required_signatures:
        return index < header.num_required_signatures - header.num_readonly_signed_accounts
    return index < len(message.account_keys) - header.num_readonly_unsigned_accounts


def _raw_instruction(instruction: CompiledInstruction, stack_height: int | None) -> dict[str, Any]:
    return {
        "accounts": list(instruction.accounts),
        "data": b58encode(bytes(instruction.data)),
        "programIdIndex": instruction.program_id_index,
        "stackHeight": stack_height,
    }


def _parsed(
    keys: list[Pubkey], instruction: CompiledInstruction, stack_height: int | None
) -> dict[str, Any]:
    accounts = [keys[index] for index in instruction.accounts]
    program = keys[instruction.program_id_index]
    return parsed_instruction(program, accounts, bytes(instruction.data), stack_height)


def _lookups(message: MessageAny) -> list[dict[str, Any]]:
    if not isinstance(message, MessageV0):
        return []
    return [
        {
            "accountKey": str(lookup.account_key),
            "writableIndexes": list(lookup.writable_indexes),
            "readonlyIndexes": list(lookup.readonly_indexes),
        }
        for lookup in message.address_table_lookups
    ]


def _json_message(message: MessageAny) -> dict[str, Any]:
    header = message.header
    body: dict[str, Any] = {
        "accountKeys": [str(key) for key in message.account_keys],
        "header": {
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
            "numRequiredSignatures": header.num_required_signatures,
        },
        "instructions": [_raw_instruction(ix, None) for ix in message.instructions],
        "recentBlockhash": str(message.recent_blockhash),
    }
    if isinstance(message, MessageV0):
        body["addressTableLookups"] = _lookups(message)
    return body


def _parsed_message(message: MessageAny) -> dict[str, Any]:
    keys = list(message.account_keys)
    body: dict[str, Any] = {
        "accountKeys": [
            {
                "pubkey": str(key),
                "signer": index < message.header.num_required_signatures,
                "source": "transaction",
                "writable": _is_writable(message, index),
            }
            for index, key in enumerate(keys)
        ],
        "instructions": [_parsed(keys, ix, None) for ix in message.instructions],
        "recentBlockhash": str(message.recent_blockhash),
    }
    if isinstance(message, MessageV0):
        body["addressTableLookups"] = _lookups(message)
    return body


def encode_transaction(tx: VersionedTransaction, encoding: str) -> Any:
    """The ``transaction`` field in ``encoding``."""
    if encoding in ("base64", "base58"):
        wire = bytes(tx)
        text = base64.b64encode(wire).decode() if encoding == "base64" else b58encode(wire)
        return [text, encoding]
    message = tx.message
    return {
        "message": _parsed_message(message) if encoding == "jsonParsed" else _json_message(message),
        "signatures": [str(signature) for signature in tx.signatures],
    }


def inner_instructions_json(
    keys: list[Pubkey], groups: list[list[InnerInstruction]], *, parsed: bool
) -> list[dict[str, Any]]:
    """``innerInstructions``: per top-level instruction that made calls, what it called."""
    return [
        {"index": index, "instructions": [_inner(keys, inner, parsed) for inner in group]}
        for index, group in enumerate(groups)
        if group
    ]


def _inner(keys: list[Pubkey], inner: InnerInstruction, parsed: bool) -> dict[str, Any]:
    instruction = inner.instruction()
    # solders' stub omits stack_height(), which LiteSVM's InnerInstruction does have.
    stack_height: int | None = cast(Any, inner).stack_height()
    if parsed:
        return _parsed(keys, instruction, stack_height)
    return _raw_instruction(instruction, stack_height)


def encode_meta(record: TransactionRecord, encoding: str) -> dict[str, Any]:
    """``meta``: status, fee, balances, logs, inner instructions, compute units."""
    keys = list(record.transaction.message.account_keys)
    parsed = encoding == "jsonParsed"
    err = transaction_error_json(record.err)
    meta: dict[str, Any] = {
        "computeUnitsConsumed": record.units_consumed,
        "err": err,
        "fee": record.fee,
        "innerInstructions": inner_instructions_json(
            keys, record.inner_instructions, parsed=parsed
        ),
        "logMessages": record.logs,
        "postBalances": record.post_balances,
        "postTokenBalances": [balance.as_json() for balance in record.post_token_balances],
        "preBalances": record.pre_balances,
        "preTokenBalances": [balance.as_json() for balance in record.pre_token_balances],
        "rewards": [],
        "status": {"Ok": None} if err is None else {"Err": err},
    }
    if not parsed:  # jsonParsed shows loaded addresses among accountKeys instead
        meta["loadedAddresses"] = {"readonly": [], "writable": []}
    if record.return_data is not None:
        meta["returnData"] = return_data_json(record.return_data)
    return meta


def return_data_json(return_data: Any) -> dict[str, Any]:
    """``{"programId", "data": ["<b64>", "base64"]}``."""
    return {
        "programId": str(return_data.program_id),
        "data": [base64.b64encode(bytes(return_data.data)).decode(), "base64"],
    }


def encode_confirmed_transaction(
    record: TransactionRecord, encoding: str, max_version: int | None
) -> dict[str, Any]:
    """The ``getTransaction`` result; ``version`` only when the client named a max version."""
    result: dict[str, Any] = {
        "blockTime": record.block_time,
        "meta": encode_meta(record, encoding),
        "slot": record.slot,
        "transaction": encode_transaction(record.transaction, encoding),
    }
    if max_version is not None:
        is_v0 = isinstance(record.transaction.message, MessageV0)
        result["version"] = 0 if is_v0 else "legacy"
    return result
