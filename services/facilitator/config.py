"""Configuration of the facilitator service (environment prefix ``FACILITATOR_``).

``SOLANA_NETWORK`` and ``SOLANA_RPC_URL`` keep the names 402pay's operators already set.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.facilitator.networks import Cluster, NetworkConfig, cluster_named
from shared.settings import KassaSettings


class FacilitatorSettings(KassaSettings):
    """Settings of the facilitator service."""

    model_config = SettingsConfigDict(env_prefix="FACILITATOR_")
    app_name: ClassVar[str] = "facilitator"
    unprefixed_env: ClassVar[frozenset[str]] = KassaSettings.unprefixed_env | {
        "solana_network",
        "solana_rpc_url",
    }
    production_secrets: ClassVar[frozenset[str]] = frozenset({"fee_payer_keys"})
    production_endpoints: ClassVar[frozenset[str]] = frozenset({"solana_rpc_url"})

    port: int = Field(default=8001, ge=1, le=65535, description="HTTP port.")
    # Verify asks the database on every call: a ping per checkout would double its cost.
    db_pool_pre_ping: bool = Field(default=False, description="See KassaSettings.")
    solana_network: str = Field(
        default="devnet",
        description="The cluster settled on: mainnet-beta, devnet or testnet (or its x402 name).",
    )
    solana_rpc_url: str = Field(
        default="https://api.devnet.solana.com", description="The cluster's JSON-RPC endpoint."
    )
    fee_payer_keys: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Fee-payer secret keys, comma separated: base58 (Phantom export) or a JSON byte "
            "array (solana-keygen file). Empty outside production: one ephemeral key."
        ),
    )
    extra_mints: str = Field(
        default="",
        description="Mints accepted besides the cluster's USDC, comma separated.",
    )
    max_compute_unit_limit: int = Field(
        default=200_000, ge=1, description="Largest SetComputeUnitLimit a payment may ask."
    )
    max_compute_unit_price_micro_lamports: int = Field(
        default=5_000_000,
        ge=0,
        description="Largest SetComputeUnitPrice (micro-lamports per CU); 5 lamports as x402.",
    )
    fee_payer_min_lamports: int = Field(
        default=10_000_000, ge=0, description="Settle is refused by a fee payer below this."
    )
    fee_payer_refresh_s: float = Field(
        default=30.0, gt=0, description="How often fee-payer balances are read."
    )
    airdrop_lamports: int = Field(
        default=0,
        ge=0,
        description="Development only: airdrop this much to a fee payer below the floor.",
    )
    commitment: Literal["confirmed", "finalized"] = Field(
        default="confirmed", description="The confirmation level that counts as settled."
    )
    confirm_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest wait for confirmation before answering pending."
    )
    confirm_poll_s: float = Field(
        default=0.1,
        gt=0,
        description="Status poll interval (one batched call for every waiting settlement).",
    )
    rpc_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one RPC call.")
    memo_nonce_ttl_s: int = Field(
        default=86_400, ge=60, description="How long a settled memo cannot be paid again."
    )
    cleanup_interval_s: float = Field(
        default=300.0, gt=0, description="How often expired memo nonces are removed."
    )
    reconcile_interval_s: float = Field(
        default=10.0, gt=0, description="How often pending settlements are checked on chain."
    )
    settle_lock_ttl_s: int = Field(
        default=120, ge=1, description="Redis fast-path claim lifetime (the DB still decides)."
    )
    ledger_url: str | None = Field(
        default=None,
        description="Where settled payments are announced (the ledger through the gateway).",
    )
    announce_interval_s: float = Field(
        default=2.0, gt=0, description="How often settled payments are announced to the ledger."
    )
    ledger_api_key: SecretStr = Field(
        default=SecretStr(""), description="The facilitator's own API key at the gateway."
    )

    @field_validator("solana_network")
    @classmethod
    def _known_cluster(cls, value: str) -> str:
        if cluster_named(value) is None:
            raise ValueError("must be mainnet-beta, devnet or testnet (or solana, solana-devnet)")
        return value

    @property
    def cluster(self) -> Cluster:
        cluster = cluster_named(self.solana_network)
        assert cluster is not None  # validated above
        return cluster

    def network_config(self) -> NetworkConfig:
        """The cluster and the mints it accepts: its USDC plus ``extra_mints``."""
        extra = {mint.strip() for mint in self.extra_mints.split(",") if mint.strip()}
        return NetworkConfig(self.cluster, frozenset({self.cluster.usdc_mint, *extra}))

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.airdrop_lamports:
            problems.append("FACILITATOR_AIRDROP_LAMPORTS is for development clusters only")
        return problems
