"""Requests and replies of the key-management API (``/v1/admin/api-keys``) and the CLI.

The rules of what a valid key request is (the scope grammar, the known service identities, the
tier alphabet, an expiry in the future) live here, so the admin API and ``kassa keys`` refuse
the same inputs with the same words.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    computed_field,
    field_validator,
)

from gateway.models import ApiKey
from shared.api_key_format import KeyEnvironment
from shared.topology import SERVICES

# Scopes every key may hold; ``admin`` covers every other scope (see shared.identity.Caller).
BASIC_SCOPES = ("read", "write", "admin")
# Service identities and scope namespaces: the names under /v1/<name>/ in the gateway.
KNOWN_SERVICES = tuple(entry.gateway_prefix for entry in SERVICES if entry.gateway_prefix)
_ACTION = re.compile(r"[a-z_]+")
# Other keys of this owner are revoked whenever a gateway starts (see ensure_bootstrap_key).
RESERVED_OWNER = "bootstrap"
MAX_OVERLAP_S = 30 * 86_400
KEY_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
SCOPE_GRAMMAR = (
    f"{', '.join(BASIC_SCOPES)}, or <service>:<action> with <service> one of "
    f"{', '.join(KNOWN_SERVICES)} and <action> made of a-z and _"
)


class KeyState(enum.StrEnum):
    """Where a key is in its life, derived from ``revoked_at`` and ``expires_at``."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (SQLite hands back naive ones, stored as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def key_state(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> KeyState:
    """The state of a key at ``now`` (the repository filters with the same rule in SQL)."""
    if revoked_at is not None:
        return KeyState.REVOKED
    if expires_at is not None and as_utc(expires_at) <= now:
        return KeyState.EXPIRED
    return KeyState.ACTIVE


def _check_scope(scope: str) -> str:
    if scope in BASIC_SCOPES:
        return scope
    service, colon, action = scope.partition(":")
    if colon and service in KNOWN_SERVICES and _ACTION.fullmatch(action):
        return scope
    raise ValueError(f"unknown scope {scope!r}; a scope is {SCOPE_GRAMMAR}")


def _check_service(service: str) -> str:
    if service in KNOWN_SERVICES:
        return service
    raise ValueError(f"unknown service {service!r}; known services: {', '.join(KNOWN_SERVICES)}")


def _check_owner(owner: str) -> str:
    if owner == RESERVED_OWNER:
        raise ValueError(
            f"the owner {RESERVED_OWNER!r} is reserved for KASSA_BOOTSTRAP_ADMIN_KEY "
            "(its other keys are revoked whenever a gateway starts)"
        )
    return owner


Scope = Annotated[
    str,
    AfterValidator(_check_scope),
    Field(description=f"A permission: {SCOPE_GRAMMAR}.", examples=["ledger:write"]),
]
Owner = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    Field(
        description="Who the key belongs to: a customer, a team or a Kassa service.",
        examples=["acme-fintech"],
    ),
]
KeyName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    Field(description="What the key is for, to tell a customer's keys apart.", examples=["ci"]),
]
Tier = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$"),
    Field(
        description="Rate-limit tier: 1 to 32 of a-z, 0-9, _ and -.",
        examples=["default"],
    ),
]
ServiceName = Annotated[
    str,
    AfterValidator(_check_service),
    WithJsonSchema({"type": "string", "enum": list(KNOWN_SERVICES)}),
]
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class ApiKeyCreate(BaseModel):
    """A request for a new API key."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "owner": "acme-fintech",
                    "name": "settlement worker",
                    "environment": "live",
                    "scopes": ["read", "facilitator:settle", "ledger:write"],
                    "expires_at": "2027-06-30T00:00:00Z",
                    "rate_limit_tier": "default",
                }
            ]
        },
    )

    owner: Annotated[Owner, AfterValidator(_check_owner)]
    name: KeyName
    environment: KeyEnvironment = Field(
        default="live", description="live or test: the key starts with kas_live_ or kas_test_."
    )
    scopes: list[Scope] = Field(
        min_length=1, description="What the key may do; duplicates are dropped."
    )
    service: ServiceName | None = Field(
        default=None,
        description=(
            "Set when the key is a Kassa service's own identity, so routes can admit only "
            "certain services."
        ),
        examples=["custody"],
    )
    rate_limit_tier: Tier = "default"
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the key stops working (with a time zone, in the future); none: never.",
        examples=["2027-06-30T00:00:00Z"],
    )

    @field_validator("scopes")
    @classmethod
    def _unique_scopes(cls, scopes: list[str]) -> list[str]:
        return sorted(set(scopes))

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, expires_at: datetime | None) -> datetime | None:
        if expires_at is None:
            return None
        expires_at = as_utc(expires_at)
        if expires_at <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return expires_at


class ApiKeyRotate(BaseModel):
    """Options of a rotation; the body may be left out."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"overlap_s": 3600}]})

    overlap_s: int | None = Field(
        default=None,
        ge=0,
        le=MAX_OVERLAP_S,
        description=(
            "Seconds the old key keeps working after the rotation (an earlier expiry it "
            "already had is kept); default GATEWAY_KEY_ROTATION_OVERLAP_S. 0 ends it now."
        ),
    )

    def overlap(self, default_s: int) -> timedelta:
        """The overlap asked for, or the configured default."""
        return timedelta(seconds=default_s if self.overlap_s is None else self.overlap_s)


class ApiKeyRead(BaseModel):
    """An API key as listings show it: never the key itself, only its display prefix."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a5e2-7c1d-7a4e-9f00-2b3c4d5e6f70",
                    "display_prefix": "kas_live_4fQz",
                    "owner": "acme-fintech",
                    "name": "settlement worker",
                    "environment": "live",
                    "scopes": ["facilitator:settle", "ledger:write", "read"],
                    "service": None,
                    "rate_limit_tier": "default",
                    "created_at": "2026-11-22T08:00:00Z",
                    "expires_at": None,
                    "revoked_at": None,
                    "last_used_at": "2026-11-22T09:14:03Z",
                    "replaced_by": None,
                    "state": "active",
                }
            ]
        },
    )

    id: str = Field(description="The key's id (a time-ordered UUID).")
    display_prefix: str = Field(description="The start of the key, safe for listings and logs.")
    owner: str
    name: str
    environment: KeyEnvironment
    scopes: list[str]
    service: str | None = Field(description="The Kassa service this key identifies, if any.")
    rate_limit_tier: str
    created_at: UtcDatetime
    expires_at: UtcDatetime | None = Field(description="When the key stops working; none: never.")
    revoked_at: UtcDatetime | None
    last_used_at: UtcDatetime | None = Field(
        description="Last time the key was used (recorded lazily, up to a minute late)."
    )
    replaced_by: str | None = Field(description="The key that replaced this one in a rotation.")

    @computed_field(description="active, expired or revoked, at the time of the reply.")  # type: ignore[prop-decorator]
    @property
    def state(self) -> KeyState:
        return key_state(self.revoked_at, self.expires_at, datetime.now(UTC))


class ApiKeyCreated(BaseModel):
    """A new key: the record, and the key itself, which is shown this once and never again."""

    api_key: ApiKeyRead
    key: str = Field(
        description="The API key. Store it now: Kassa keeps only a hash and cannot show it again.",
        examples=["kas_live_4fQzR8mW2kT9vX1cB7nL0pD3hJ6sYa2b9KcQ"],
    )

    @classmethod
    def of(cls, api_key: ApiKey, key: str) -> ApiKeyCreated:
        return cls(api_key=ApiKeyRead.model_validate(api_key), key=key)


class ApiKeyRotated(ApiKeyCreated):
    """A rotation: the new key (shown once) and the old key's record with its new expiry."""

    previous: ApiKeyRead = Field(description="The rotated key; it works until its expires_at.")

    @classmethod
    def of_rotation(cls, api_key: ApiKey, key: str, previous: ApiKey) -> ApiKeyRotated:
        return cls(
            api_key=ApiKeyRead.model_validate(api_key),
            key=key,
            previous=ApiKeyRead.model_validate(previous),
        )


class ApiKeyList(BaseModel):
    """One page of keys, newest first."""

    items: list[ApiKeyRead]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )
