"""Settings of the TrovoTech sandbox (``TROVOTECH_SANDBOX_`` prefix) and its fixed keys.

The sandbox is not a Kassa service (no database, no caller identity), so it has its own settings
class rather than ``KassaSettings``. The values the custody service must share with it are also
read under the names operators already use (``TROVOTECH_API_KEY``, ``TROVOTECH_ISSUER_ID``,
``TROVOTECH_WEBHOOK_SECRET``, ``BANTU_NETWORK``), so ``kassa run`` can hand both the same
environment; the ``TROVOTECH_SANDBOX_`` name wins when both are set. Faults are a nested model:
``TROVOTECH_SANDBOX_FAULTS__ERROR_RATE=0.2`` or ``TROVOTECH_SANDBOX_FAULTS='{"error_rate": 0.2}'``.
"""

from __future__ import annotations

import hashlib
import os
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from stellar_sdk import Keypair

from shared.settings import DEVELOPMENT_SECRET_PREFIX
from shared.topology import GATEWAY, SANDBOX_BASE_PORT, SANDBOXES

APP_NAME = "trovotech"
ENV_PREFIX = "TROVOTECH_SANDBOX_"
SEED_PREFIX = DEVELOPMENT_SECRET_PREFIX + "kassa/sandboxes/trovotech/"
ISSUER_SEED = "issuer"
CUSTODY_SEED = "custody"
# Network names, not secrets: they go into every transaction hash (spec: "Bantu").
BANTU_TESTNET_PASSPHRASE = "Bantu Testnet"  # noqa: S105
BANTU_MAINNET_PASSPHRASE = "Public Bantu Network ; 10-10-2020"  # noqa: S105
# Where custody receives TrovoTech's webhooks, through the gateway (issue 5).
WEBHOOK_PATH = "/api/webhooks/trovotech"
# The port `kassa run` gives this sandbox; the topology is the single source of it.
DEFAULT_PORT = next(
    (entry.port for entry in SANDBOXES if entry.module == "sandboxes.trovotech"),
    SANDBOX_BASE_PORT + 1,
)


def default_webhook_url() -> str:
    """The gateway's webhook route as ``kassa run`` places it (``KASSA_PORT_OFFSET`` applied)."""
    port = GATEWAY.port + int(os.environ.get("KASSA_PORT_OFFSET") or 0)
    return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"


def sandbox_keypair(seed: str) -> Keypair:
    """The sandbox keypair named ``seed``: ed25519 from sha256 of the prefixed name."""
    return Keypair.from_raw_ed25519_seed(hashlib.sha256((SEED_PREFIX + seed).encode()).digest())


def _names(field: str, *operator_names: str) -> AliasChoices:
    # The prefixed name first: pydantic takes the first alias found.
    return AliasChoices(ENV_PREFIX + field.upper(), *operator_names)


class Faults(BaseModel):
    """What goes wrong, and how often: API replies, webhook deliveries and payouts.

    Rates are probabilities per request (or per delivery); ``*_next`` counters fail exactly the
    next N requests, for deterministic tests. API faults apply to the TrovoTech API only, never
    to ``/health``, ``/ready``, ``/docs`` or ``/sandbox/...``.
    """

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of 5xx replies.")
    fail_next: int = Field(default=0, ge=0, description="Answer the next N API calls with a 5xx.")
    error_status: Literal[500, 502, 503, 504] = Field(
        default=503, description="Status of an injected error."
    )
    error_after_effect: bool = Field(
        default=False,
        description=(
            "Inject the 5xx after the operation took effect (the reply is lost, the mint is not): "
            "only an Idempotency-Key keeps a retry from doing it twice."
        ),
    )
    latency_ms: int = Field(default=0, ge=0, description="Added to every API reply.")
    timeout_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of API calls that first sleep timeout_s."
    )
    timeout_next: int = Field(default=0, ge=0, description="The next N API calls sleep timeout_s.")
    timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a timed-out call sleeps (past the client's timeout) before it is "
        "processed anyway, as a slow server would.",
    )
    paths: list[str] = Field(
        default_factory=list,
        description="Only API paths ending with one of these (e.g. /token/mint); empty = all.",
    )
    webhook_duplicate_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of events delivered twice (same event id)."
    )
    webhook_out_of_order: bool = Field(
        default=False,
        description="Hold events for webhook_reorder_window_ms, then deliver them newest first.",
    )
    webhook_reorder_window_ms: int = Field(default=500, ge=1, le=60_000)
    webhook_bad_signature_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of deliveries signed with the wrong secret."
    )
    payout_fail_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of payouts that end in payout.failed."
    )
    payout_fail_next: int = Field(default=0, ge=0, description="The next N payouts fail.")
    seed: int | None = Field(default=None, description="Seed of the fault dice (reproducible).")


class TrovoTechSandboxSettings(BaseSettings):
    """Where the sandbox listens, the credentials it expects, its chain and its webhooks."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="HTTP port.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(default=True, description="JSON lines (true) or readable text.")

    api_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET_PREFIX + "trovotech-api-key"),
        validation_alias=_names("api_key", "TROVOTECH_API_KEY"),
        description="The key callers present (Authorization: Bearer or X-TW-SERVICE-LINK-API-KEY).",
    )
    issuer_id: str = Field(
        default=DEVELOPMENT_SECRET_PREFIX + "trovotech-issuer",
        min_length=1,
        validation_alias=_names("issuer_id", "TROVOTECH_ISSUER_ID"),
        description="The issuer this API key may act for (issuer_id in request bodies).",
    )
    issuer_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_names("issuer_secret"),
        description="Stellar secret seed (S...) of the issuer account; unset = the fixed "
        "sandbox issuer.",
    )
    custody_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_names("custody_secret"),
        description="Stellar secret seed of the trustee custody wallet that funds new wallets "
        "and pays payouts; unset = the fixed sandbox custody wallet.",
    )
    webhook_url: str | None = Field(
        default_factory=default_webhook_url,
        validation_alias=_names("webhook_url"),
        description="Where events are POSTed; empty = deliveries are recorded but not sent.",
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET_PREFIX + "trovotech-webhook-secret"),
        validation_alias=_names("webhook_secret", "TROVOTECH_WEBHOOK_SECRET"),
        description="HMAC-SHA256 key of X-TrovoTech-Signature.",
    )
    bantu_network: Literal["testnet", "mainnet"] = Field(
        default="testnet",
        validation_alias=_names("bantu_network", "BANTU_NETWORK"),
        description="Chooses the default network passphrase.",
    )
    network_passphrase: str | None = Field(
        default=None,
        validation_alias=_names("network_passphrase"),
        description="Overrides the passphrase (and so every transaction hash).",
    )
    base_fee: int = Field(default=100, ge=100, description="Stroops per operation.")
    payout_asset_code: str = Field(
        default="NGN",
        pattern=r"^[A-Za-z0-9]{1,12}$",
        description="Asset of payouts, issued by the issuer.",
    )
    payout_asset_decimals: int = Field(
        default=2, ge=0, le=7, description="Minor units per payout asset unit, as a power of ten."
    )
    mint_confirm_delay_ms: int = Field(
        default=1000,
        ge=0,
        description="A mint answers pending and token.minted follows after this; 0 = confirmed "
        "in the reply.",
    )
    payout_settle_delay_ms: int = Field(
        default=500, ge=0, description="A payout answers processing and settles after this."
    )
    webhook_max_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts per delivery, the first included."
    )
    webhook_backoff_s: float = Field(
        default=1.0, ge=0, description="Wait before the second attempt; doubles each time."
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Per attempt.")
    require_idempotency_key: bool = Field(
        default=False, description="Refuse POSTs without an Idempotency-Key (400)."
    )
    enforce_ownership_cap: bool = Field(
        default=True, description="Refuse mints that would take an asset past 100% (422)."
    )
    faults: Faults = Field(default_factory=Faults)

    @field_validator("webhook_url")
    @classmethod
    def _empty_url_disables(cls, value: str | None) -> str | None:
        return value or None

    @property
    def passphrase(self) -> str:
        """The network passphrase every transaction is signed for."""
        if self.network_passphrase:
            return self.network_passphrase
        if self.bantu_network == "mainnet":
            return BANTU_MAINNET_PASSPHRASE
        return BANTU_TESTNET_PASSPHRASE

    def issuer_keypair(self) -> Keypair:
        """The issuer account's keys: configured, or the fixed sandbox issuer."""
        if self.issuer_secret is not None:
            return Keypair.from_secret(self.issuer_secret.get_secret_value())
        return sandbox_keypair(ISSUER_SEED)

    def custody_keypair(self) -> Keypair:
        """The trustee custody wallet's keys: configured, or the fixed sandbox wallet."""
        if self.custody_secret is not None:
            return Keypair.from_secret(self.custody_secret.get_secret_value())
        return sandbox_keypair(CUSTODY_SEED)
