"""Instructions in ``jsonParsed`` form, for the programs a payment touches.

A node parses the instructions of programs it knows (``solana-transaction-status``
parse_instruction: system, spl-token, spl-token-2022, spl-associated-token-account, spl-memo,
...) into ``{"program", "programId", "parsed": {"type", "info"}, "stackHeight"}`` and leaves the
rest as ``{"programId", "accounts", "data" (base58), "stackHeight"}``, as it does for the
compute-budget program. The sandbox parses the instructions x402 payments, the faucet and
simple transfers use; any other instruction stays in the raw form (a node would parse more).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM

from sandboxes.solana_rpc.base58 import b58encode
from sandboxes.solana_rpc.tokens import (
    ASSOCIATED_TOKEN_PROGRAM,
    TOKEN_PROGRAM_NAMES,
    ui_token_amount,
)

MEMO_PROGRAMS = frozenset(
    {
        Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),
        Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"),
    }
)

Parsed = dict[str, Any]
TokenParser = Callable[[list[str], bytes], Parsed | None]


def _u64(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 8], "little")


def _parse_system(accounts: list[str], data: bytes) -> Parsed | None:
    kind = int.from_bytes(data[:4], "little") if len(data) >= 4 else None
    if kind == 0 and len(data) >= 52 and len(accounts) >= 2:
        info = {
            "source": accounts[0],
            "newAccount": accounts[1],
            "lamports": _u64(data, 4),
            "space": _u64(data, 12),
            "owner": str(Pubkey(data[20:52])),
        }
        return {"type": "createAccount", "info": info}
    if kind == 2 and len(data) >= 12 and len(accounts) >= 2:
        info = {"source": accounts[0], "destination": accounts[1], "lamports": _u64(data, 4)}
        return {"type": "transfer", "info": info}
    return None


def _token_transfer(accounts: list[str], data: bytes) -> Parsed | None:
    if len(accounts) < 3 or len(data) < 9:
        return None
    info = {
        "source": accounts[0],
        "destination": accounts[1],
        "authority": accounts[2],
        "amount": str(_u64(data, 1)),
    }
    return {"type": "transfer", "info": info}


def _token_transfer_checked(accounts: list[str], data: bytes) -> Parsed | None:
    if len(accounts) < 4 or len(data) < 10:
        return None
    info = {
        "source": accounts[0],
        "mint": accounts[1],
        "destination": accounts[2],
        "authority": accounts[3],
        "tokenAmount": ui_token_amount(_u64(data, 1), data[9]),
    }
    return {"type": "transferChecked", "info": info}


def _token_mint_to(accounts: list[str], data: bytes) -> Parsed | None:
    if len(accounts) < 3 or len(data) < 9:
        return None
    info = {
        "mint": accounts[0],
        "account": accounts[1],
        "mintAuthority": accounts[2],
        "amount": str(_u64(data, 1)),
    }
    return {"type": "mintTo", "info": info}


def _token_mint_to_checked(accounts: list[str], data: bytes) -> Parsed | None:
    if len(accounts) < 3 or len(data) < 10:
        return None
    info = {
        "mint": accounts[0],
        "account": accounts[1],
        "mintAuthority": accounts[2],
        "tokenAmount": ui_token_amount(_u64(data, 1), data[9]),
    }
    return {"type": "mintToChecked", "info": info}


def _mint_init_info(mint: str, data: bytes) -> dict[str, Any] | None:
    """decimals u8, mint authority, then a one-byte-tagged optional freeze authority."""
    if len(data) < 35:
        return None
    info: dict[str, Any] = {
        "mint": mint,
        "decimals": data[1],
        "mintAuthority": str(Pubkey(data[2:34])),
    }
    if data[34] == 1 and len(data) >= 67:
        info["freezeAuthority"] = str(Pubkey(data[35:67]))
    return info


def _token_initialize_mint(accounts: list[str], data: bytes) -> Parsed | None:
    info = _mint_init_info(accounts[0], data) if len(accounts) >= 2 else None
    if info is None:
        return None
    return {"type": "initializeMint", "info": {**info, "rentSysvar": accounts[1]}}


def _token_initialize_mint2(accounts: list[str], data: bytes) -> Parsed | None:
    info = _mint_init_info(accounts[0], data) if accounts else None
    return {"type": "initializeMint2", "info": info} if info is not None else None


def _token_initialize_account3(accounts: list[str], data: bytes) -> Parsed | None:
    if len(accounts) < 2 or len(data) < 33:
        return None
    info = {"account": accounts[0], "mint": accounts[1], "owner": str(Pubkey(data[1:33]))}
    return {"type": "initializeAccount3", "info": info}


def _token_get_account_data_size(accounts: list[str], data: bytes) -> Parsed | None:
    if not accounts:
        return None
    return {"type": "getAccountDataSize", "info": {"mint": accounts[0]}}


def _token_initialize_immutable_owner(accounts: list[str], data: bytes) -> Parsed | None:
    if not accounts:
        return None
    return {"type": "initializeImmutableOwner", "info": {"account": accounts[0]}}


_TOKEN_PARSERS: dict[int, TokenParser] = {
    0: _token_initialize_mint,
    3: _token_transfer,
    7: _token_mint_to,
    12: _token_transfer_checked,
    14: _token_mint_to_checked,
    18: _token_initialize_account3,
    20: _token_initialize_mint2,
    21: _token_get_account_data_size,
    22: _token_initialize_immutable_owner,
}


def _parse_token(accounts: list[str], data: bytes) -> Parsed | None:
    parser = _TOKEN_PARSERS.get(data[0]) if data else None
    return parser(accounts, data) if parser is not None else None


def _parse_associated_token(accounts: list[str], data: bytes) -> Parsed | None:
    kinds = {b"": "create", b"\x00": "create", b"\x01": "createIdempotent"}
    kind = kinds.get(data)
    if kind is None or len(accounts) < 6:
        return None
    names = ("source", "account", "wallet", "mint", "systemProgram", "tokenProgram")
    return {"type": kind, "info": dict(zip(names, accounts, strict=False))}


def _parse(program: Pubkey, accounts: list[str], data: bytes) -> tuple[str, Any] | None:
    """The program's jsonParsed name and the parsed body, if the sandbox parses it."""
    if program in MEMO_PROGRAMS:
        return "spl-memo", data.decode("utf-8", errors="replace")
    parsed: Parsed | None = None
    name = TOKEN_PROGRAM_NAMES.get(program)
    if name is not None:
        parsed = _parse_token(accounts, data)
    elif program == SYSTEM_PROGRAM:
        name, parsed = "system", _parse_system(accounts, data)
    elif program == ASSOCIATED_TOKEN_PROGRAM:
        name, parsed = "spl-associated-token-account", _parse_associated_token(accounts, data)
    if name is None or parsed is None:
        return None
    return name, parsed


def parsed_instruction(
    program: Pubkey, accounts: Sequence[Pubkey], data: bytes, stack_height: int | None
) -> dict[str, Any]:
    """One instruction in jsonParsed form: parsed when known, raw (base58 data) otherwise."""
    keys = [str(account) for account in accounts]
    parsed = _parse(program, keys, data)
    if parsed is None:
        return {
            "accounts": keys,
            "data": b58encode(data),
            "programId": str(program),
            "stackHeight": stack_height,
        }
    name, body = parsed
    return {"parsed": body, "program": name, "programId": str(program), "stackHeight": stack_height}
