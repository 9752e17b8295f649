"""The x402 facilitator wire format (v1 and v2, camelCase as the protocol spells it) and
Kassa's own payment records (snake_case, as every Kassa API).

A body that is not the protocol's shape is a 422 naming the field; a well-formed payment that
breaks a rule is HTTP 200 with ``isValid: false`` and a reason code, as x402 clients expect.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.facilitator.models import PaymentStatus

BASE58_ADDRESS = r"^[1-9A-HJ-NP-Za-km-z]{32,44}$"
U64_MAX = 2**64 - 1
_DIGITS = re.compile(r"^[0-9]{1,20}$")


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


class SvmPayload(_Wire):
    """The exact scheme's payload on Solana: the partially signed transaction."""

    transaction: str = Field(min_length=1, max_length=4096, description="Base64 wire bytes.")


def _amount(value: str) -> str:
    if not _DIGITS.fullmatch(value) or int(value) > U64_MAX:
        raise ValueError("must be a decimal string of base units between 0 and 2^64-1")
    return value


class _RequirementsBase(_Wire):
    scheme: str = Field(max_length=32)
    network: str = Field(max_length=64)
    asset: str = Field(pattern=BASE58_ADDRESS, description="The mint address.")
    pay_to: str = Field(alias="payTo", pattern=BASE58_ADDRESS)
    max_timeout_seconds: int = Field(alias="maxTimeoutSeconds", ge=1, le=86_400)
    extra: dict[str, Any] | None = None


class PaymentRequirementsV2(_RequirementsBase):
    """x402 v2 requirements: ``amount`` and a CAIP-2 network."""

    amount: str = Field(description="Base units of the asset, as a decimal string.")

    _check_amount = field_validator("amount")(_amount)


class PaymentRequirementsV1(_RequirementsBase):
    """x402 v1 requirements: ``maxAmountRequired`` and a network name."""

    max_amount_required: str = Field(alias="maxAmountRequired")
    resource: str = Field(default="", max_length=2048)
    description: str | None = None
    mime_type: str | None = Field(default=None, alias="mimeType")

    _check_amount = field_validator("max_amount_required")(_amount)


class ResourceInfo(_Wire):
    url: str = Field(max_length=2048)


class PaymentPayloadV2(_Wire):
    x402_version: Literal[2] = Field(alias="x402Version")
    payload: SvmPayload
    accepted: PaymentRequirementsV2
    resource: ResourceInfo | None = None


class PaymentPayloadV1(_Wire):
    x402_version: Literal[1] = Field(alias="x402Version")
    scheme: str = Field(max_length=32)
    network: str = Field(max_length=64)
    payload: SvmPayload


class FacilitatorRequest(_Wire):
    """The body of ``/verify`` and ``/settle``; the payload and requirements are read by
    ``x402Version`` (v1 and v2 differ in shape)."""

    x402_version: int = Field(alias="x402Version")
    payment_payload: dict[str, Any] = Field(alias="paymentPayload")
    payment_requirements: dict[str, Any] = Field(alias="paymentRequirements")


class VerifyReply(BaseModel):
    """``/verify``'s answer; HTTP 200 whether valid or not."""

    model_config = ConfigDict(populate_by_name=True)

    is_valid: bool = Field(alias="isValid")
    invalid_reason: str | None = Field(default=None, alias="invalidReason")
    invalid_message: str | None = Field(default=None, alias="invalidMessage")
    payer: str | None = None


class SettleReply(BaseModel):
    """``/settle``'s answer; ``transaction`` is the signature, empty when nothing was sent."""

    model_config = ConfigDict(populate_by_name=True)

    success: bool
    error_reason: str | None = Field(default=None, alias="errorReason")
    error_message: str | None = Field(default=None, alias="errorMessage")
    payer: str | None = None
    transaction: str = ""
    network: str
    amount: str | None = None
    extra: dict[str, Any] | None = Field(
        default=None, description="Kassa's paymentId and whether this answer is a replay."
    )


class SupportedKind(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    x402_version: int = Field(alias="x402Version")
    scheme: str
    network: str
    extra: dict[str, Any]


class SupportedReply(BaseModel):
    kinds: list[SupportedKind]
    extensions: list[str] = Field(default_factory=list)
    signers: dict[str, list[str]]


class PaymentRead(BaseModel):
    """A payment record."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: PaymentStatus
    x402_version: int
    network: str = Field(description="CAIP-2 id of the cluster.")
    asset: str = Field(description="The mint.")
    amount: str = Field(description="Base units of the asset, as a decimal string.")
    pay_to: str
    payer: str
    fee_payer: str
    signature: str
    message_hash: str
    memo: str | None
    resource: str | None
    error_reason: str | None
    error_message: str | None
    slot: int | None
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None
    announced_at: datetime | None
