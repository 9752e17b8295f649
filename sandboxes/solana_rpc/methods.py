"""The Solana JSON-RPC methods the sandbox answers, over :class:`Chain`.

Parameters, defaults and result shapes follow solana.com/docs/rpc/http (one page per method)
and Agave's ``rpc/src/rpc.rs``: positional params with an optional config object last;
``commitment`` defaults to ``finalized``; results that the real API wraps carry
``{"context": {"slot", "apiVersion"}, "value"}``; ``sendTransaction`` and
``simulateTransaction`` take base58 unless ``encoding`` says base64; ``getTransaction`` refuses
``processed`` and needs ``maxSupportedTransactionVersion`` for v0 transactions. Each method is a
plain function of the chain and the params; :mod:`rpc` runs it under the sandbox's lock.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from solders.hash import Hash
from solders.message import MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from sandboxes.solana_rpc.base58 import b58decode
from sandboxes.solana_rpc.chain import (
    SLOTS_PER_EPOCH,
    Chain,
    Commitment,
    PreflightFailed,
    SignatureVerificationFailed,
    Simulation,
)
from sandboxes.solana_rpc.encoding import (
    ACCOUNT_ENCODINGS,
    TRANSACTION_ENCODINGS,
    encode_account,
    encode_confirmed_transaction,
    inner_instructions_json,
    return_data_json,
)
from sandboxes.solana_rpc.errors import (
    SEND_TRANSACTION_PREFLIGHT_FAILURE,
    RpcError,
    internal_error,
    invalid_params,
    min_context_slot_not_reached,
    signature_verification_failure,
    transaction_error_json,
    transaction_error_message,
    unsupported_transaction_version,
)
from sandboxes.solana_rpc.tokens import decode_mint, decode_token_account, ui_token_amount

# What getVersion reports: the Agave line LiteSVM in solders 0.27 is built from.
SOLANA_CORE_VERSION = "2.2.0"
FEATURE_SET = 3294202862
PACKET_DATA_SIZE = 1232  # largest wire transaction
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURE_STATUSES = 256
U64_MAX = 2**64 - 1
_COMMITMENT_ALIASES = {
    "processed": Commitment.PROCESSED,
    "recent": Commitment.PROCESSED,
    "confirmed": Commitment.CONFIRMED,
    "single": Commitment.CONFIRMED,
    "singleGossip": Commitment.CONFIRMED,
    "finalized": Commitment.FINALIZED,
    "root": Commitment.FINALIZED,
    "max": Commitment.FINALIZED,
}


@dataclass(frozen=True)
class Params:
    """A method's positional parameters."""

    values: list[Any]

    def required(self, index: int, name: str) -> Any:
        if index >= len(self.values) or self.values[index] is None:
            raise invalid_params(f"Invalid params: missing parameter `{name}` at position {index}")
        return self.values[index]

    def config(self, index: int) -> dict[str, Any]:
        value = self.values[index] if index < len(self.values) else None
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise invalid_params(f"Invalid params: expected a config object at position {index}")
        return value


Method = Callable[[Chain, Params], Any]


def with_context(slot: int, value: Any) -> dict[str, Any]:
    """The ``RpcResponse`` wrapper."""
    return {"context": {"apiVersion": SOLANA_CORE_VERSION, "slot": slot}, "value": value}


# -- parameter parsing ---------------------------------------------------------------------


def _pubkey(value: Any) -> Pubkey:
    if not isinstance(value, str):
        raise invalid_params("Invalid param: Invalid")
    try:
        return Pubkey.from_string(value)
    except ValueError as exc:
        raise invalid_params(f"Invalid param: {exc}") from exc


def _signature(value: Any) -> Signature:
    if not isinstance(value, str):
        raise invalid_params("Invalid param: Invalid")
    try:
        return Signature.from_string(value)
    except ValueError as exc:
        raise invalid_params(f"Invalid param: {exc}") from exc


def _hash(value: Any) -> Hash:
    if not isinstance(value, str):
        raise invalid_params("Invalid params: expected a base58 blockhash")
    try:
        return Hash.from_string(value)
    except ValueError as exc:
        raise invalid_params(str(exc)) from exc


def _unsigned(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise invalid_params(f"Invalid params: `{name}` must be an unsigned 64-bit integer")
    return value


def _commitment(config: dict[str, Any]) -> Commitment:
    name = config.get("commitment")
    if name is None:
        return Commitment.FINALIZED
    commitment = _COMMITMENT_ALIASES.get(name) if isinstance(name, str) else None
    if commitment is None:
        raise invalid_params(f"Invalid params: unknown commitment `{name}`")
    return commitment


def _context_slot(chain: Chain, config: dict[str, Any]) -> int:
    """The slot a read at the config's commitment sees; honours ``minContextSlot``."""
    slot = chain.slot_at(_commitment(config))
    minimum = config.get("minContextSlot")
    if minimum is not None and _unsigned(minimum, "minContextSlot") > slot:
        raise min_context_slot_not_reached(slot)
    return slot


def _account_encoding(config: dict[str, Any], default: str) -> str:
    encoding = config.get("encoding", default)
    if encoding not in ACCOUNT_ENCODINGS:
        raise invalid_params(
            f"Invalid params: unsupported encoding `{encoding}`; the sandbox supports binary, "
            "base58, base64 and jsonParsed"
        )
    return str(encoding)


def _decode_wire(data: Any, encoding: str) -> bytes:
    if not isinstance(data, str):
        raise invalid_params("Invalid params: expected an encoded transaction string")
    if encoding not in ("base58", "base64"):
        raise invalid_params(
            f"unsupported encoding: {encoding}. Supported encodings: base58, base64"
        )
    try:
        raw = b58decode(data) if encoding == "base58" else base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise invalid_params(f"invalid {encoding} encoding: {exc}") from exc
    if len(raw) > PACKET_DATA_SIZE:
        raise invalid_params(
            f"decoded solana_transaction::versioned::VersionedTransaction too large: "
            f"{len(raw)} bytes (max: {PACKET_DATA_SIZE} bytes)"
        )
    return raw


def decode_transaction(data: Any, encoding: str) -> VersionedTransaction:
    """A wire transaction, sanitized, or -32602 as a node answers."""
    raw = _decode_wire(data, encoding)
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except ValueError as exc:
        raise invalid_params(
            f"failed to deserialize solana_transaction::versioned::VersionedTransaction: {exc}"
        ) from exc
    try:
        tx.sanitize()
    except Exception as exc:  # solders raises its own SanitizeError type
        raise invalid_params(f"invalid transaction: {exc}") from exc
    return tx


# -- cluster -------------------------------------------------------------------------------


def get_health(chain: Chain, params: Params) -> str:
    return "ok"


def get_version(chain: Chain, params: Params) -> dict[str, Any]:
    return {"feature-set": FEATURE_SET, "solana-core": SOLANA_CORE_VERSION}


def get_genesis_hash(chain: Chain, params: Params) -> str:
    return str(chain.genesis_hash)


def get_slot(chain: Chain, params: Params) -> int:
    return _context_slot(chain, params.config(0))


def get_block_height(chain: Chain, params: Params) -> int:
    # The sandbox skips no slot, so every slot is a block.
    return _context_slot(chain, params.config(0))


def get_transaction_count(chain: Chain, params: Params) -> int:
    _context_slot(chain, params.config(0))
    return chain.transaction_count


def get_epoch_info(chain: Chain, params: Params) -> dict[str, Any]:
    slot = _context_slot(chain, params.config(0))
    return {
        "absoluteSlot": slot,
        "blockHeight": slot,
        "epoch": slot // SLOTS_PER_EPOCH,
        "slotIndex": slot % SLOTS_PER_EPOCH,
        "slotsInEpoch": SLOTS_PER_EPOCH,
        "transactionCount": chain.transaction_count,
    }


def get_latest_blockhash(chain: Chain, params: Params) -> dict[str, Any]:
    slot = _context_slot(chain, params.config(0))
    value = {
        "blockhash": str(chain.blockhash_at(slot)),
        "lastValidBlockHeight": chain.last_valid_block_height(slot),
    }
    return with_context(slot, value)


def is_blockhash_valid(chain: Chain, params: Params) -> dict[str, Any]:
    blockhash = _hash(params.required(0, "blockhash"))
    slot = _context_slot(chain, params.config(1))
    return with_context(slot, chain.is_blockhash_valid(blockhash, at_slot=slot))


def get_minimum_balance_for_rent_exemption(chain: Chain, params: Params) -> int:
    size = _unsigned(params.required(0, "dataLength"), "dataLength")
    _context_slot(chain, params.config(1))
    return chain.rent_exempt_minimum(size)


def get_fee_for_message(chain: Chain, params: Params) -> dict[str, Any]:
    raw = _decode_wire(params.required(0, "message"), "base64")
    slot = _context_slot(chain, params.config(1))
    try:
        message = from_bytes_versioned(raw)
    except ValueError as exc:
        raise invalid_params(f"invalid transaction message: {exc}") from exc
    # A node answers null for a blockhash it no longer (or never) knew.
    fee = chain.fee_for(message) if chain.knows_blockhash(message.recent_blockhash) else None
    return with_context(slot, fee)


# -- accounts ------------------------------------------------------------------------------


def _encoded(chain: Chain, address: Pubkey, config: dict[str, Any], default: str) -> Any:
    account = chain.account(address)
    if account is None:
        return None
    encoding = _account_encoding(config, default)
    return encode_account(account, encoding, config.get("dataSlice"), chain.decimals_of)


def get_account_info(chain: Chain, params: Params) -> dict[str, Any]:
    address = _pubkey(params.required(0, "pubkey"))
    config = params.config(1)
    slot = _context_slot(chain, config)
    _account_encoding(config, "binary")
    return with_context(slot, _encoded(chain, address, config, "binary"))


def get_multiple_accounts(chain: Chain, params: Params) -> dict[str, Any]:
    addresses = params.required(0, "pubkeys")
    if not isinstance(addresses, list):
        raise invalid_params("Invalid params: expected an array of pubkeys")
    if len(addresses) > MAX_MULTIPLE_ACCOUNTS:
        raise invalid_params(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
    config = params.config(1)
    slot = _context_slot(chain, config)
    _account_encoding(config, "base64")
    keys = [_pubkey(address) for address in addresses]
    return with_context(slot, [_encoded(chain, key, config, "base64") for key in keys])


def get_balance(chain: Chain, params: Params) -> dict[str, Any]:
    address = _pubkey(params.required(0, "pubkey"))
    slot = _context_slot(chain, params.config(1))
    account = chain.account(address)
    return with_context(slot, account.lamports if account is not None else 0)


def get_token_account_balance(chain: Chain, params: Params) -> dict[str, Any]:
    address = _pubkey(params.required(0, "pubkey"))
    slot = _context_slot(chain, params.config(1))
    account = chain.account(address)
    if account is None:
        raise invalid_params("Invalid param: could not find account")
    token = decode_token_account(account)
    if token is None:
        raise invalid_params("Invalid param: not a Token account")
    decimals = chain.decimals_of(token.mint)
    if decimals is None:
        raise invalid_params("Invalid param: could not find mint")
    return with_context(slot, ui_token_amount(token.amount, decimals))


def get_token_supply(chain: Chain, params: Params) -> dict[str, Any]:
    address = _pubkey(params.required(0, "pubkey"))
    slot = _context_slot(chain, params.config(1))
    account = chain.account(address)
    mint = decode_mint(account) if account is not None else None
    if mint is None:
        raise invalid_params("Invalid param: not a Token mint")
    return with_context(slot, ui_token_amount(mint.supply, mint.decimals))


# -- transactions --------------------------------------------------------------------------


def simulation_json(
    simulation: Simulation, tx: VersionedTransaction, accounts: list[Any] | None, inner: bool
) -> dict[str, Any]:
    """``RpcSimulateTransactionResult``, also the ``data`` of a preflight failure."""
    replacement = simulation.replacement
    keys = list(tx.message.account_keys)
    return {
        "accounts": accounts,
        "err": transaction_error_json(simulation.err),
        "fee": simulation.fee,
        "innerInstructions": (
            inner_instructions_json(keys, simulation.inner_instructions, parsed=True)
            if inner
            else None
        ),
        "loadedAccountsDataSize": simulation.loaded_accounts_data_size,
        "logs": simulation.logs,
        "replacementBlockhash": (
            {"blockhash": str(replacement[0]), "lastValidBlockHeight": replacement[1]}
            if replacement is not None
            else None
        ),
        "returnData": (
            return_data_json(simulation.return_data) if simulation.return_data else None
        ),
        "unitsConsumed": simulation.units_consumed,
    }


def _simulated_accounts(
    chain: Chain, simulation: Simulation, tx: VersionedTransaction, request: Any
) -> list[Any] | None:
    """The accounts a simulation asked to see, in their post-simulation state."""
    if request is None:
        return None
    if not isinstance(request, dict) or not isinstance(request.get("addresses"), list):
        raise invalid_params("Invalid params: `accounts` needs an `addresses` array")
    encoding = request.get("encoding", "base64")
    if encoding in ("binary", "base58"):
        raise invalid_params("base58 encoding not supported")
    encoding = _account_encoding({"encoding": encoding}, "base64")
    addresses = [_pubkey(address) for address in request["addresses"]]
    if len(addresses) > len(tx.message.account_keys):
        raise invalid_params(f"Too many accounts provided; max {len(tx.message.account_keys)}")
    if simulation.err is not None:
        return [None] * len(addresses)
    encoded: list[Any] = []
    for address in addresses:
        account = simulation.post_accounts.get(address) or chain.account(address)
        encoded.append(
            encode_account(account, encoding, None, chain.decimals_of) if account else None
        )
    return encoded


def simulate_transaction(chain: Chain, params: Params) -> dict[str, Any]:
    config = params.config(1)
    tx = decode_transaction(params.required(0, "transaction"), config.get("encoding", "base58"))
    sig_verify = bool(config.get("sigVerify", False))
    replace_blockhash = bool(config.get("replaceRecentBlockhash", False))
    if sig_verify and replace_blockhash:
        raise invalid_params("sigVerify may not be used with replaceRecentBlockhash")
    commitment = _commitment(config)
    slot = _context_slot(chain, config)
    try:
        simulation = chain.simulate(
            tx, sig_verify=sig_verify, replace_blockhash=commitment if replace_blockhash else None
        )
    except SignatureVerificationFailed as exc:
        raise signature_verification_failure() from exc
    accounts = _simulated_accounts(chain, simulation, tx, config.get("accounts"))
    inner = bool(config.get("innerInstructions", False))
    return with_context(slot, simulation_json(simulation, tx, accounts, inner))


def send_transaction(chain: Chain, params: Params) -> str:
    config = params.config(1)
    tx = decode_transaction(params.required(0, "transaction"), config.get("encoding", "base58"))
    preflight = {"commitment": config.get("preflightCommitment")}
    _context_slot(chain, {**preflight, "minContextSlot": config.get("minContextSlot")})
    try:
        signature = chain.send(tx, skip_preflight=bool(config.get("skipPreflight", False)))
    except SignatureVerificationFailed as exc:
        raise signature_verification_failure() from exc
    except PreflightFailed as failure:
        simulation = failure.simulation
        assert simulation.err is not None
        raise RpcError(
            SEND_TRANSACTION_PREFLIGHT_FAILURE,
            f"Transaction simulation failed: {transaction_error_message(simulation.err)}",
            simulation_json(simulation, tx, None, inner=False),
        ) from failure
    return str(signature)


def request_airdrop(chain: Chain, params: Params) -> str:
    recipient = _pubkey(params.required(0, "pubkey"))
    lamports = _unsigned(params.required(1, "lamports"), "lamports")
    _context_slot(chain, params.config(2))
    try:
        return str(chain.airdrop(recipient, lamports))
    except PreflightFailed as failure:
        raise internal_error() from failure


def _status_json(chain: Chain, signature: Signature, search_history: bool) -> Any:
    status = chain.status(signature, search_history=search_history)
    if status is None:
        return None
    err = transaction_error_json(status.err)
    return {
        "confirmationStatus": status.commitment.value,
        "confirmations": status.confirmations,
        "err": err,
        "slot": status.slot,
        "status": {"Ok": None} if err is None else {"Err": err},
    }


def get_signature_statuses(chain: Chain, params: Params) -> dict[str, Any]:
    signatures = params.required(0, "signatures")
    if not isinstance(signatures, list):
        raise invalid_params("Invalid params: expected an array of signatures")
    if len(signatures) > MAX_SIGNATURE_STATUSES:
        raise invalid_params(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
    parsed = [_signature(signature) for signature in signatures]
    search_history = bool(params.config(1).get("searchTransactionHistory", False))
    statuses = [_status_json(chain, signature, search_history) for signature in parsed]
    return with_context(chain.slot, statuses)


def _transaction_config(params: Params) -> dict[str, Any]:
    """The config object, or the deprecated bare encoding string."""
    value = params.values[1] if len(params.values) > 1 else None
    return {"encoding": value} if isinstance(value, str) else params.config(1)


def get_transaction(chain: Chain, params: Params) -> Any:
    signature = _signature(params.required(0, "signature"))
    config = _transaction_config(params)
    encoding = config.get("encoding", "json")
    if encoding not in TRANSACTION_ENCODINGS:
        raise invalid_params(f"Invalid params: unsupported encoding `{encoding}`")
    commitment = _commitment(config)
    if commitment is Commitment.PROCESSED:
        raise invalid_params("Method does not support commitment below `confirmed`")
    max_version = config.get("maxSupportedTransactionVersion")
    if max_version is not None:
        max_version = _unsigned(max_version, "maxSupportedTransactionVersion")
    record = chain.transaction(signature, commitment)
    if record is None:
        return None
    if isinstance(record.transaction.message, MessageV0) and max_version is None:
        raise unsupported_transaction_version(0)
    return encode_confirmed_transaction(record, str(encoding), max_version)


METHODS: dict[str, Method] = {
    "getAccountInfo": get_account_info,
    "getBalance": get_balance,
    "getBlockHeight": get_block_height,
    "getEpochInfo": get_epoch_info,
    "getFeeForMessage": get_fee_for_message,
    "getGenesisHash": get_genesis_hash,
    "getHealth": get_health,
    "getLatestBlockhash": get_latest_blockhash,
    "getMinimumBalanceForRentExemption": get_minimum_balance_for_rent_exemption,
    "getMultipleAccounts": get_multiple_accounts,
    "getSignatureStatuses": get_signature_statuses,
    "getSlot": get_slot,
    "getTokenAccountBalance": get_token_account_balance,
    "getTokenSupply": get_token_supply,
    "getTransaction": get_transaction,
    "getTransactionCount": get_transaction_count,
    "getVersion": get_version,
    "isBlockhashValid": is_blockhash_valid,
    "requestAirdrop": request_airdrop,
    "sendTransaction": send_transaction,
    "simulateTransaction": simulate_transaction,
}
