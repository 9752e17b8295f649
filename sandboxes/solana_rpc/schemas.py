"""Requests and replies of the faucet API (plain JSON over HTTP, not JSON-RPC).

Amounts are integers in base units: lamports for SOL, the mint's smallest unit for tokens
(1 USDC = 1_000_000 at 6 decimals).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from solders.pubkey import Pubkey

U64_MAX = 2**64 - 1
# One call hands out at most a million SOL; the treasury holds 500 million.
MAX_FUND_LAMPORTS = 1_000_000 * 1_000_000_000

TokenProgramName = Literal["spl-token", "spl-token-2022"]


def _pubkey_text(value: str) -> str:
    try:
        Pubkey.from_string(value)
    except ValueError as exc:
        raise ValueError(f"not a base58 Solana address: {value!r}") from exc
    return value


class MintCreate(BaseModel):
    """A new mint whose authority the faucet keeps."""

    decimals: int = Field(default=6, ge=0, le=18, description="Decimal places of the token.")
    program: TokenProgramName = Field(default="spl-token", description="Token program.")
    label: str = Field(default="sandbox mint", min_length=1, max_length=64)


class MintRead(BaseModel):
    """A mint the faucet controls."""

    address: str
    label: str
    decimals: int
    program: TokenProgramName
    program_id: str
    supply: int = Field(description="Base units in circulation.")


class FundRequest(BaseModel):
    """SOL and/or tokens for a wallet; naming a mint with amount 0 only creates its ATA."""

    owner: str = Field(description="The wallet (base58 address) to fund.")
    lamports: int = Field(default=0, ge=0, le=MAX_FUND_LAMPORTS, description="SOL in lamports.")
    mint: str | None = Field(
        default=None, description="A faucet mint; the sandbox USDC when only `amount` is given."
    )
    amount: int = Field(default=0, ge=0, le=U64_MAX, description="Tokens in base units.")

    @field_validator("owner")
    @classmethod
    def _owner_is_address(cls, value: str) -> str:
        return _pubkey_text(value)

    @field_validator("mint")
    @classmethod
    def _mint_is_address(cls, value: str | None) -> str | None:
        return _pubkey_text(value) if value is not None else None

    @model_validator(mode="after")
    def _asks_for_something(self) -> FundRequest:
        if not self.lamports and self.mint is None and not self.amount:
            raise ValueError("ask for lamports, a mint, or an amount of tokens")
        return self


class FundRead(BaseModel):
    """What the funding transaction did."""

    signature: str
    owner: str
    lamports: int
    mint: str | None
    token_program: TokenProgramName | None
    token_account: str | None = Field(description="The owner's associated token account.")
    amount: int


class AdvanceRequest(BaseModel):
    """Let slots pass at once (to expire blockhashes or finalize transactions)."""

    slots: int = Field(ge=1, le=100_000)


class ClockRead(BaseModel):
    """The newest slot and its blockhash."""

    slot: int
    blockhash: str
    last_valid_block_height: int


class SandboxState(BaseModel):
    """Who is who in the sandbox."""

    slot: int
    genesis_hash: str
    treasury: str = Field(description="Pays airdrops and faucet transactions.")
    treasury_lamports: int
    mint_authority: str
    mints: list[MintRead]
