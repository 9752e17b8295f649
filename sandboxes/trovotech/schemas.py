"""Requests and replies of the TrovoTech API, the webhook payloads, and the admin API.

Requests take TrovoTech's snake_case names (what FleetFi's client sent: ``issuer_id``,
``investor_wallet``, ``fraction_owned``...) and the camelCase the seeds show (``assetId``,
``fractionOwned``, ``investAmount``, ``investorWallet``); replies and webhooks are snake_case.
Money is integer minor units of the payout asset (kobo for NGN); ``fraction_owned`` is a
percentage of the asset (0 < f <= 100, at most 7 decimal places: a Stellar amount).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from stellar_sdk import StrKey

TokenStatus = Literal["pending", "confirmed"]
PayoutStatus = Literal["processing", "completed", "failed"]
DeliveryStatus = Literal["pending", "delivered", "failed", "skipped"]
DeliveryKind = Literal["original", "duplicate", "redelivery"]
EventType = Literal[
    "wallet.created",
    "token.minted",
    "payout.completed",
    "payout.failed",
    "transfer.completed",
    "custody.updated",
]
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"  # YYYY-MM


def bantu_address(value: str) -> str:
    """``value`` if it is a StrKey ``G...`` ed25519 public key (FleetFi's ``GBANTU...`` is not)."""
    if not StrKey.is_valid_ed25519_public_key(value):
        raise ValueError(f"not a Bantu (StrKey G...) address: {value!r}")
    return value


class _Request(BaseModel):
    model_config = ConfigDict(populate_by_name=True, str_strip_whitespace=True)


# -- requests --------------------------------------------------------------------------------


class WalletCreate(_Request):
    """A custodial wallet for an investor; one per investor e-mail, later calls return it."""

    issuer_id: str = Field(validation_alias=AliasChoices("issuer_id", "issuerId"), min_length=1)
    investor_email: str = Field(
        validation_alias=AliasChoices("investor_email", "investorEmail", "email"),
        pattern=r"^[^@\s]+@[^@\s]+$",
        max_length=254,
    )
    investor_name: str | None = Field(
        default=None, validation_alias=AliasChoices("investor_name", "investorName"), max_length=200
    )
    kyc_verified: bool = Field(
        default=False, validation_alias=AliasChoices("kyc_verified", "kycVerified")
    )


class MintCreate(_Request):
    """Mint a fraction of an asset to an investor's custodial wallet."""

    issuer_id: str = Field(validation_alias=AliasChoices("issuer_id", "issuerId"), min_length=1)
    asset_id: str = Field(
        validation_alias=AliasChoices("asset_id", "assetId"), min_length=1, max_length=64
    )
    asset_type: str = Field(
        validation_alias=AliasChoices("asset_type", "assetType"), min_length=1, max_length=32
    )
    fraction_owned: Decimal = Field(
        validation_alias=AliasChoices("fraction_owned", "fractionOwned"),
        gt=0,
        le=100,
        decimal_places=7,
        description="Percent of the asset, at most 7 decimal places.",
    )
    invest_amount: int = Field(
        validation_alias=AliasChoices("invest_amount", "investAmount", "investment_amount"),
        ge=0,
        description="Integer minor units.",
    )
    investor_wallet: str = Field(validation_alias=AliasChoices("investor_wallet", "investorWallet"))
    asset_metadata: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("asset_metadata", "assetMetadata")
    )

    @field_validator("investor_wallet")
    @classmethod
    def _is_address(cls, value: str) -> str:
        return bantu_address(value)


class PayoutCreate(_Request):
    """Distribute revenue over tokens, pro rata to fraction owned (largest remainder)."""

    issuer_id: str = Field(validation_alias=AliasChoices("issuer_id", "issuerId"), min_length=1)
    token_ids: list[str] = Field(
        validation_alias=AliasChoices("token_ids", "tokenIds"), min_length=1, max_length=100
    )
    total_amount: int = Field(
        validation_alias=AliasChoices("total_amount", "totalAmount", "totalRevenue"),
        ge=1,
        description="Integer minor units to distribute.",
    )
    period: str = Field(pattern=PERIOD_PATTERN, description="YYYY-MM")
    description: str = Field(default="Revenue distribution", min_length=1, max_length=255)

    @field_validator("token_ids")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("token_ids must be distinct")
        return value


class TransferCreate(_Request):
    """Move a whole token to another custodial wallet."""

    issuer_id: str = Field(validation_alias=AliasChoices("issuer_id", "issuerId"), min_length=1)
    token_id: str = Field(validation_alias=AliasChoices("token_id", "tokenId"), min_length=1)
    to_wallet: str = Field(validation_alias=AliasChoices("to_wallet", "toWallet"))
    from_wallet: str | None = Field(
        default=None,
        validation_alias=AliasChoices("from_wallet", "fromWallet"),
        description="When given, must be the token's current holder.",
    )

    @field_validator("to_wallet", "from_wallet")
    @classmethod
    def _is_address(cls, value: str | None) -> str | None:
        return bantu_address(value) if value is not None else None


class TelemetrySync(_Request):
    """Telemetry of an asset, anchored as a metadata hash (extra fields are telemetry too)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    asset_id: str = Field(
        validation_alias=AliasChoices("asset_id", "assetId"), min_length=1, max_length=64
    )
    issuer_id: str | None = Field(
        default=None, validation_alias=AliasChoices("issuer_id", "issuerId")
    )
    telemetry_data: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("telemetry_data", "telemetryData")
    )


# -- replies ---------------------------------------------------------------------------------


class ConnectionRead(BaseModel):
    """The connection test: who answered, for which issuer and network."""

    status: Literal["ok"] = "ok"
    service: str = "TrovoTech sandbox (Kassa)"
    environment: Literal["sandbox"] = "sandbox"
    issuer_id: str
    issuer_public_key: str
    custody_wallet: str
    network_passphrase: str
    ledger: int
    server_time: datetime


class WalletRead(BaseModel):
    """A custodial wallet and its balances."""

    wallet_id: str
    wallet_address: str = Field(description="StrKey G... public key.")
    trustee_ref: str
    investor_email: str
    investor_name: str | None
    kyc_verified: bool
    balance: int = Field(description="Payout asset held, integer minor units.")
    currency: str = Field(description="Payout asset code.")
    native_balance: str = Field(description="XBN, as a Stellar amount string.")
    sequence: int
    tx_hash: str = Field(description="The CreateAccount transaction.")
    created_at: datetime


class TokenRead(BaseModel):
    """An asset token held in custody."""

    token_id: str
    status: TokenStatus
    asset_id: str
    asset_type: str
    asset_code: str = Field(description="The Stellar asset code of the asset's tokens.")
    asset_issuer: str
    investor_wallet: str
    fraction_owned: float
    investment_amount: int
    current_value: int = Field(description="investment_amount + total_returns")
    total_returns: int
    chain: Literal["bantu"] = "bantu"
    metadata_hash: str
    trustee_ref: str
    tx_hash: str = Field(description="Hash of the mint envelope for the network passphrase.")
    created_at: datetime
    minted_at: datetime | None = Field(description="When token.minted was emitted.")


class MintRead(TokenRead):
    """A mint's reply: the token, its signed envelope and what is left of the asset."""

    envelope_xdr: str
    network_passphrase: str
    ledger: int
    remaining_ownership: float


class TokensRead(BaseModel):
    """Tokens of a wallet (or all of the issuer's)."""

    wallet_address: str | None
    tokens: list[TokenRead]


class Distribution(BaseModel):
    """One token's part of a payout."""

    token_id: str
    investor_wallet: str
    amount: int = Field(description="Integer minor units.")


class PayoutRead(BaseModel):
    """A payout; tx_hash is set once it has completed."""

    payout_id: str
    status: PayoutStatus
    period: str
    description: str
    total_amount: int
    currency: str
    distributions: list[Distribution]
    tx_hash: str | None
    envelope_xdr: str | None
    reason: str | None
    created_at: datetime
    completed_at: datetime | None


class TransferRead(BaseModel):
    """A completed token transfer."""

    transfer_id: str
    token_id: str
    asset_id: str
    from_wallet: str
    to_wallet: str
    fraction_owned: float
    tx_hash: str
    envelope_xdr: str
    transferred_at: datetime


class TelemetryRead(BaseModel):
    """Where the telemetry snapshot is anchored."""

    success: bool = True
    asset_id: str
    uri: str
    metadata_hash: str
    synced_at: datetime


# -- webhook payloads (the ``data`` of each event) -------------------------------------------


class WalletCreatedData(BaseModel):
    """``wallet.created``: a custodial wallet exists on chain."""

    wallet_id: str
    wallet_address: str
    trustee_ref: str
    user_email: str
    tx_hash: str
    created_at: datetime


class TokenMintedData(BaseModel):
    """``token.minted``: the mint is confirmed; the token is the investor's."""

    token_id: str
    tx_hash: str
    asset_id: str
    asset_type: str
    asset_code: str
    investor_wallet: str
    fraction_owned: float
    investment_amount: int
    current_value: int
    chain: Literal["bantu"] = "bantu"
    metadata_hash: str
    trustee_ref: str
    minted_at: datetime


class PayoutCompletedData(BaseModel):
    """``payout.completed``: every part was paid in one transaction."""

    payout_id: str
    tx_hash: str
    period: str
    description: str
    total_amount: int
    currency: str
    distributions: list[Distribution]
    completed_at: datetime


class PayoutFailedData(BaseModel):
    """``payout.failed``: nothing was paid."""

    payout_id: str
    reason: str
    period: str
    total_amount: int
    failed_at: datetime


class TransferCompletedData(BaseModel):
    """``transfer.completed``: the token moved to another wallet."""

    token_id: str
    from_wallet: str
    to_wallet: str
    tx_hash: str
    asset_id: str
    fraction_owned: float
    transferred_at: datetime


class CustodyUpdatedData(BaseModel):
    """``custody.updated``: the asset's custody status (``in_custody`` at its first mint)."""

    asset_id: str
    trustee_ref: str
    status: str
    updated_at: datetime


# -- admin (/sandbox) ------------------------------------------------------------------------


class AttemptRead(BaseModel):
    """One POST of a delivery."""

    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryRead(BaseModel):
    """One delivery of an event (a duplicate or redelivery is a delivery of its own)."""

    delivery_id: str
    event_id: str
    event_type: str
    kind: DeliveryKind
    url: str | None
    status: DeliveryStatus
    signature: str
    signature_valid: bool = Field(description="False when the bad-signature fault signed it.")
    body: str = Field(description="The exact bytes sent (and signed), as text.")
    attempts: list[AttemptRead]
    created_at: datetime
    completed_at: datetime | None


class RequestRecordRead(BaseModel):
    """One call to the TrovoTech API as the sandbox saw it."""

    method: str
    path: str
    status: int
    request_id: str | None
    idempotency_key: str | None
    replayed: bool
    faults: list[str]
    at: datetime
    duration_ms: float


class EventCreate(BaseModel):
    """Any event, signed and delivered like the real ones (unknown types included)."""

    event_type: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)


class EventRead(BaseModel):
    """An emitted event."""

    event_id: str
    event_type: str
    created_at: datetime
    deliveries: list[str] = Field(description="Delivery ids (several when duplicated).")


class RedeliverRequest(BaseModel):
    """Send an event again, ``times`` times at once (same body, same event id)."""

    times: int = Field(default=1, ge=1, le=100)


class AssetRead(BaseModel):
    """An asset the sandbox has minted tokens of."""

    asset_id: str
    asset_type: str
    asset_code: str
    trustee_ref: str
    custody_status: str
    allocated: float
    remaining: float
    telemetry_uri: str | None


class PayoutAssetRead(BaseModel):
    """The asset payouts are paid in."""

    code: str
    issuer: str
    decimals: int


class StateRead(BaseModel):
    """Everything the sandbox holds, for tests and demos."""

    network_passphrase: str
    ledger: int
    issuer_id: str
    issuer_public_key: str
    custody_wallet: str
    payout_asset: PayoutAssetRead
    webhook_url: str | None
    wallets: list[WalletRead]
    tokens: list[TokenRead]
    assets: list[AssetRead]
    payouts: list[PayoutRead]
    transfers: list[TransferRead]
    events: int
    deliveries: dict[str, int] = Field(description="Deliveries by status.")


class ErrorRead(BaseModel):
    """TrovoTech's error body (validation errors add ``errors``, the cap adds its numbers)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="Machine code, e.g. error-invalid-api-key.")
    data: str | None = Field(description="The parameter affected.")
    message: str
