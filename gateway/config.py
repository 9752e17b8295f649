"""Configuration of the gateway (environment prefix ``GATEWAY_``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import KassaSettings

DEFAULT_UPSTREAMS = {
    "facilitator": "http://127.0.0.1:8001",
    "custody": "http://127.0.0.1:8002",
    "fiscal": "http://127.0.0.1:8003",
    "ledger": "http://127.0.0.1:8004",
}
# Public paths (no API key, still rate limited) and the service prefix they route to.
DEFAULT_PUBLIC_ROUTES = {"/api/webhooks/trovotech": "custody"}


def _parse_pairs(value: object) -> object:
    """``name=url,name=url`` (the form a shell or a ConfigMap writes easily) or a dict."""
    if not isinstance(value, str):
        return value
    pairs = [item.strip() for item in value.split(",") if item.strip()]
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"expected name=url, got {pair!r}")
        parsed[name.strip()] = url.strip().rstrip("/")
    return parsed


class GatewaySettings(KassaSettings):
    """Settings of the gateway."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")
    app_name: ClassVar[str] = "gateway"
    production_secrets: ClassVar[frozenset[str]] = frozenset(
        {"identity_signing_key", "api_key_secret"}
    )

    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port.")
    identity_signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 private key (PEM) that signs caller assertions. Required.",
    )
    identity_ttl_s: int = Field(
        default=30, ge=1, le=60, description="Lifetime of a caller assertion, seconds."
    )
    api_key_secret: SecretStr | None = Field(
        default=None, description="Server secret for HMAC-SHA256 of API keys. Required."
    )
    bootstrap_admin_key: SecretStr | None = Field(
        default=None,
        validation_alias="KASSA_BOOTSTRAP_ADMIN_KEY",
        description="An admin API key ensured at start-up (the operator's first key).",
    )
    key_cache_ttl_s: float = Field(
        default=30.0,
        gt=0,
        le=300,
        description="How long a key's principal is cached (revocation invalidates at once).",
    )
    key_rotation_overlap_s: int = Field(
        default=86_400,
        ge=0,
        le=30 * 86_400,
        description="Default time the old key stays valid after a rotation, seconds.",
    )
    last_used_flush_s: float = Field(
        default=60.0, gt=0, description="How often last_used_at is written, seconds."
    )
    upstreams: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_UPSTREAMS),
        description=(
            "Routing table: name=base_url pairs; /v1/<name>/<path> goes to <base_url>/<path>."
        ),
    )
    public_routes: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_PUBLIC_ROUTES),
        description="path=upstream pairs served without an API key.",
    )
    upstream_connect_timeout_s: float = Field(default=2.0, gt=0)
    upstream_timeout_s: float = Field(default=30.0, gt=0, description="Whole upstream exchange.")
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="Larger bodies get 413.")

    _split_pairs = field_validator("upstreams", "public_routes", mode="before")(_parse_pairs)
