"""Settings of the Solana sandbox (``SOLANA_SANDBOX_`` prefix) and its fixed keys.

The sandbox is not a Kassa service (no database, no caller identity), so it has its own small
settings class rather than ``KassaSettings``. Its keys are derived from fixed seeds: the same
mint addresses on every run let ``SOLANA_RPC_URL`` users configure the USDC mint once. They are
sandbox keys, public by construction, and must never hold anything real.
"""

from __future__ import annotations

import hashlib

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from solders.keypair import Keypair

from shared.topology import SANDBOX_BASE_PORT

APP_NAME = "solana_rpc"
SEED_PREFIX = "kassa/sandboxes/solana_rpc/"
USDC_MINT_SEED = "usdc-mint"
USDC_2022_MINT_SEED = "usdc-2022-mint"
MINT_AUTHORITY_SEED = "mint-authority"
TREASURY_SEED = "faucet"


def sandbox_keypair(seed: str) -> Keypair:
    """The sandbox keypair named ``seed``: ed25519 from sha256 of the prefixed name."""
    return Keypair.from_seed(hashlib.sha256((SEED_PREFIX + seed).encode()).digest())


class SandboxSettings(BaseSettings):
    """Where the sandbox listens and how fast its clock runs."""

    model_config = SettingsConfigDict(env_prefix="SOLANA_SANDBOX_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=SANDBOX_BASE_PORT, ge=1, le=65535, description="HTTP port.")
    slot_ms: int = Field(
        default=400,
        ge=0,
        description="Wall-clock milliseconds per slot; 0 stops the clock (POST /faucet/advance).",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(default=True, description="JSON lines (true) or readable text.")
