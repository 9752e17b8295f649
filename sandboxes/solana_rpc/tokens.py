"""SPL Token and Token-2022 state: decoding mints and token accounts, and their JSON shapes.

The layouts are the programs' own (spl-token ``state.rs``: a mint is 82 bytes, an account 165;
Token-2022 appends an account-type byte at offset 165 and TLV extensions after it). The JSON
follows what a Solana node's ``jsonParsed`` encoding returns (solana.com/docs/rpc/http/
getaccountinfo, getTokenAccountBalance and the ``solana-account-decoder`` parse_token module):
``{"program": "spl-token", "parsed": {"type": "mint"|"account", "info": {...}}, "space": N}``,
amounts as strings, ``uiAmount`` as a float and ``uiAmountString`` trimmed of trailing zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ASSOCIATED_TOKEN_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
# The name each token program goes by in jsonParsed output.
TOKEN_PROGRAM_NAMES = {TOKEN_PROGRAM: "spl-token", TOKEN_2022_PROGRAM: "spl-token-2022"}

MINT_SIZE = 82
ACCOUNT_SIZE = 165
MULTISIG_SIZE = 355
_ACCOUNT_TYPE_MINT = 1
_ACCOUNT_TYPE_ACCOUNT = 2
_ACCOUNT_STATES = {0: "uninitialized", 1: "initialized", 2: "frozen"}
# Token-2022 extension types whose parsed form carries no state of its own.
_STATELESS_EXTENSIONS = {7: "immutableOwner", 9: "nonTransferable", 13: "nonTransferableAccount"}

DecimalsLookup = Callable[[Pubkey], int | None]


@dataclass(frozen=True)
class MintState:
    """A decoded mint."""

    mint_authority: Pubkey | None
    supply: int
    decimals: int
    is_initialized: bool
    freeze_authority: Pubkey | None
    extensions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TokenAccountState:
    """A decoded token account."""

    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None
    state: int
    native_reserve: int | None
    delegated_amount: int
    close_authority: Pubkey | None
    extensions: list[dict[str, Any]] = field(default_factory=list)


def is_token_program(program: Pubkey) -> bool:
    """True for SPL Token and Token-2022."""
    return program in TOKEN_PROGRAM_NAMES


def _optional_pubkey(data: bytes) -> Pubkey | None:
    """A ``COption<Pubkey>``: a u32 tag, then the key."""
    return Pubkey(data[4:36]) if int.from_bytes(data[:4], "little") == 1 else None


def _optional_u64(data: bytes) -> int | None:
    return int.from_bytes(data[4:12], "little") if int.from_bytes(data[:4], "little") == 1 else None


def _extensions(data: bytes) -> list[dict[str, Any]]:
    """Token-2022 TLV entries after the account-type byte, by name where the sandbox knows it."""
    entries: list[dict[str, Any]] = []
    offset = ACCOUNT_SIZE + 1
    while offset + 4 <= len(data):
        kind = int.from_bytes(data[offset : offset + 2], "little")
        length = int.from_bytes(data[offset + 2 : offset + 4], "little")
        if kind == 0:  # uninitialized padding ends the list
            break
        entries.append({"extension": _STATELESS_EXTENSIONS.get(kind, "unparseableExtension")})
        offset += 4 + length
    return entries


def _account_type(data: bytes, program: Pubkey) -> int | None:
    """Whether ``data`` is a mint or a token account (``None``: neither, e.g. a multisig)."""
    if len(data) == MINT_SIZE:
        return _ACCOUNT_TYPE_MINT
    if len(data) == ACCOUNT_SIZE:
        return _ACCOUNT_TYPE_ACCOUNT
    if program == TOKEN_2022_PROGRAM and len(data) > ACCOUNT_SIZE and len(data) != MULTISIG_SIZE:
        kind = data[ACCOUNT_SIZE]
        return kind if kind in (_ACCOUNT_TYPE_MINT, _ACCOUNT_TYPE_ACCOUNT) else None
    return None


def decode_mint(account: Account) -> MintState | None:
    """The mint stored in ``account``, or ``None`` if it holds no initialized mint."""
    data = bytes(account.data)
    if (
        not is_token_program(account.owner)
        or _account_type(data, account.owner) != _ACCOUNT_TYPE_MINT
    ):
        return None
    if not data[45]:
        return None
    return MintState(
        mint_authority=_optional_pubkey(data[0:36]),
        supply=int.from_bytes(data[36:44], "little"),
        decimals=data[44],
        is_initialized=True,
        freeze_authority=_optional_pubkey(data[46:82]),
        extensions=_extensions(data) if len(data) > ACCOUNT_SIZE else [],
    )


def decode_token_account(account: Account) -> TokenAccountState | None:
    """The token account stored in ``account``, or ``None`` if it holds none."""
    data = bytes(account.data)
    if (
        not is_token_program(account.owner)
        or _account_type(data, account.owner) != _ACCOUNT_TYPE_ACCOUNT
    ):
        return None
    state = data[108]
    if state == 0:
        return None
    return TokenAccountState(
        mint=Pubkey(data[0:32]),
        owner=Pubkey(data[32:64]),
        amount=int.from_bytes(data[64:72], "little"),
        delegate=_optional_pubkey(data[72:108]),
        state=state,
        native_reserve=_optional_u64(data[109:121]),
        delegated_amount=int.from_bytes(data[121:129], "little"),
        close_authority=_optional_pubkey(data[129:165]),
        extensions=_extensions(data) if len(data) > ACCOUNT_SIZE else [],
    )


def ui_amount_string(amount: int, decimals: int) -> str:
    """``amount`` base units as a decimal string without trailing zeros ("1.5", "0")."""
    if decimals == 0:
        return str(amount)
    digits = str(amount).rjust(decimals + 1, "0")
    whole, fraction = digits[:-decimals], digits[-decimals:].rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    """The ``UiTokenAmount`` object: exact string, float for display, trimmed decimal string."""
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": amount / 10**decimals,  # a float, as the RPC API reports it
        "uiAmountString": ui_amount_string(amount, decimals),
    }


def _key(value: Pubkey | None) -> str | None:
    return str(value) if value is not None else None


def mint_json(mint: MintState) -> dict[str, Any]:
    """``parsed`` of a mint: ``{"type": "mint", "info": {...}}``."""
    info: dict[str, Any] = {
        "decimals": mint.decimals,
        "freezeAuthority": _key(mint.freeze_authority),
        "isInitialized": mint.is_initialized,
        "mintAuthority": _key(mint.mint_authority),
        "supply": str(mint.supply),
    }
    if mint.extensions:
        info["extensions"] = mint.extensions
    return {"type": "mint", "info": info}


def token_account_json(token: TokenAccountState, decimals: int) -> dict[str, Any]:
    """``parsed`` of a token account: ``{"type": "account", "info": {...}}``."""
    info: dict[str, Any] = {
        "isNative": token.native_reserve is not None,
        "mint": str(token.mint),
        "owner": str(token.owner),
        "state": _ACCOUNT_STATES.get(token.state, "uninitialized"),
        "tokenAmount": ui_token_amount(token.amount, decimals),
    }
    if token.delegate is not None:
        info["delegate"] = str(token.delegate)
        info["delegatedAmount"] = ui_token_amount(token.delegated_amount, decimals)
    if token.native_reserve is not None:
        info["rentExemptReserve"] = ui_token_amount(token.native_reserve, decimals)
    if token.close_authority is not None:
        info["closeAuthority"] = str(token.close_authority)
    if token.extensions:
        info["extensions"] = token.extensions
    return {"type": "account", "info": info}


def parsed_account_data(account: Account, decimals_of: DecimalsLookup) -> dict[str, Any] | None:
    """The jsonParsed ``data`` of a token-program account, or ``None`` to fall back to base64."""
    program = TOKEN_PROGRAM_NAMES.get(account.owner)
    if program is None:
        return None
    parsed: dict[str, Any] | None = None
    mint = decode_mint(account)
    if mint is not None:
        parsed = mint_json(mint)
    token = decode_token_account(account)
    if token is not None:
        decimals = decimals_of(token.mint)
        if decimals is None:  # a node cannot parse an account whose mint it cannot read
            return None
        parsed = token_account_json(token, decimals)
    if parsed is None:
        return None
    return {"program": program, "parsed": parsed, "space": len(bytes(account.data))}


@dataclass(frozen=True)
class TokenBalance:
    """One entry of ``meta.preTokenBalances`` / ``postTokenBalances``."""

    account_index: int
    mint: Pubkey
    owner: Pubkey
    program: Pubkey
    amount: int
    decimals: int

    def as_json(self) -> dict[str, Any]:
        return {
            "accountIndex": self.account_index,
            "mint": str(self.mint),
            "owner": str(self.owner),
            "programId": str(self.program),
            "uiTokenAmount": ui_token_amount(self.amount, self.decimals),
        }


def token_balances(
    accounts: Sequence[Account | None], decimals_of: DecimalsLookup
) -> list[TokenBalance]:
    """The token balances among a transaction's accounts, by account index."""
    balances: list[TokenBalance] = []
    for index, account in enumerate(accounts):
        token = decode_token_account(account) if account is not None else None
        if account is None or token is None:
            continue
        decimals = decimals_of(token.mint)
        if decimals is None:
            continue
        balances.append(
            TokenBalance(index, token.mint, token.owner, account.owner, token.amount, decimals)
        )
    return balances
