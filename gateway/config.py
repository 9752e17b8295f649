"""Configuration of the gateway (environment prefix ``GATEWAY_``)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
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
    return {name: url.rstrip("/") for name, url in _pairs(value, "name=url").items()}


RouteClassName = Literal["public", "auth", "verify"]
FailMode = Literal["open", "closed"]

_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)s?)?\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_UNIT_SECONDS |= {"h": 3600, "hour": 3600}


class RateQuota(BaseModel):
    """``limit`` requests per ``window_s`` seconds, bursts up to ``limit`` allowed."""

    model_config = ConfigDict(frozen=True)

    limit: int = Field(ge=1)
    window_s: int = Field(ge=1)


def _parse_quota(value: object) -> object:
    """``1000`` (per minute, as in the 402pay guide), ``100/s``, ``500/10s``, ``5000/1h``."""
    if not isinstance(value, str | int):
        return value
    match = _RATE.match(str(value))
    if match is None:
        raise ValueError(f"expected N, N/s, N/m, N/h or N/<count><unit>, got {value!r}")
    limit, count, unit = match.groups()
    window = int(count or 1) * _UNIT_SECONDS[unit] if unit else 60
    return {"limit": int(limit), "window_s": window}


class RouteRule(BaseModel):
    """Overrides for the requests whose path starts with ``prefix``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str = Field(pattern=r"^/", description="Path prefix on the gateway, e.g. /v1/x/y.")
    route_class: RouteClassName | None = Field(
        default=None, description="public, auth or verify: which rate limit applies."
    )
    scopes: list[str] | None = Field(
        default=None, description="Any one of these scopes admits the request (admin always)."
    )
    callers: list[str] | None = Field(
        default=None, description="Only keys of these service identities are admitted."
    )


class UpstreamPolicy(BaseModel):
    """Timeouts, retries and circuit breaking for one upstream."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connect_timeout_s: float = Field(default=2.0, gt=0)
    timeout_s: float = Field(default=30.0, gt=0, description="The whole upstream exchange.")
    retries: int = Field(default=2, ge=0, le=5, description="Extra attempts, idempotent only.")
    breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open the circuit."
    )
    breaker_cooldown_s: float = Field(
        default=10.0, gt=0, description="How long an open circuit refuses before a probe."
    )


DEFAULT_ROUTE_RULES = (
    RouteRule(
        prefix="/v1/facilitator/verify",
        route_class="verify",
        scopes=["facilitator:verify", "facilitator:settle"],
    ),
    RouteRule(prefix="/v1/facilitator/settle", route_class="verify", scopes=["facilitator:settle"]),
)


def _parse_tiers(value: object) -> object:
    if not isinstance(value, str):
        return value
    tiers: dict[str, float] = {}
    for name, factor in _pairs(value).items():
        try:
            tiers[name] = float(factor)
        except ValueError:
            raise ValueError(f"tier {name!r}: {factor!r} is not a number") from None
    return tiers


def _pairs(value: str, form: str = "name=value") -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in (item.strip() for item in value.split(",") if item.strip()):
        name, sep, setting = pair.partition("=")
        if not sep or not name.strip() or not setting.strip():
            raise ValueError(f"expected {form}, got {pair!r}")
        parsed[name.strip()] = setting.strip()
    return parsed


def _default_fail_modes() -> dict[str, FailMode]:
    # Payments verification fails closed: an unlimited verify route is an RPC-cost amplifier.
    return {"public": "open", "auth": "open", "verify": "closed"}


def _parse_list(value: object) -> object:
    if not isinstance(value, str):
        return value
    return [item.strip() for item in value.split(",") if item.strip()]


class GatewaySettings(KassaSettings):
    """Settings of the gateway."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")
    app_name: ClassVar[str] = "gateway"
    unprefixed_env: ClassVar[frozenset[str]] = KassaSettings.unprefixed_env | {
        "allowed_origins",
        "public_rate_limit",
        "auth_rate_limit",
        "verify_rate_limit",
    }
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
    route_rules: list[RouteRule] = Field(
        default_factory=lambda: list(DEFAULT_ROUTE_RULES),
        description="JSON list of per-prefix overrides: route_class, scopes, callers.",
    )
    upstream_policy: UpstreamPolicy = Field(
        default_factory=UpstreamPolicy,
        description="JSON: the timeouts, retries and breaker of every upstream.",
    )
    upstream_policies: dict[str, UpstreamPolicy] = Field(
        default_factory=dict,
        description='JSON: per-upstream overrides, e.g. {"fiscal": {"timeout_s": 60}}.',
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="Larger bodies get 413.")

    public_rate_limit: Annotated[RateQuota, NoDecode] = Field(
        default_factory=lambda: RateQuota(limit=1000, window_s=60),
        description="Per client IP on public routes (N per minute, or N/s, N/10s, N/h).",
    )
    auth_rate_limit: Annotated[RateQuota, NoDecode] = Field(
        default_factory=lambda: RateQuota(limit=2000, window_s=60),
        description="Per API key on authenticated routes, times the key's tier factor.",
    )
    verify_rate_limit: Annotated[RateQuota, NoDecode] = Field(
        default_factory=lambda: RateQuota(limit=500, window_s=60),
        description="Per API key on payment verification and settlement.",
    )
    rate_limit_tiers: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: {"default": 1.0},
        description="tier=factor pairs multiplying a key's limits; 0 means unlimited.",
    )
    rate_limit_fail_modes: Annotated[dict[str, FailMode], NoDecode] = Field(
        default_factory=_default_fail_modes,
        description=(
            "class=open|closed: with Redis down, open falls back to a per-process limiter, "
            "closed answers 503."
        ),
    )
    redis_timeout_s: float = Field(
        default=0.25, gt=0, description="Hot-path Redis timeout before the fail mode applies."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs whose X-Forwarded-For is believed (the ingress, the load balancer).",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CORS allow-list, comma separated; a wildcard is refused in production.",
    )
    cors_max_age_s: int = Field(default=600, ge=0, description="Preflight cache lifetime.")

    _split_pairs = field_validator("upstreams", "public_routes", mode="before")(_parse_pairs)
    _split_tiers = field_validator("rate_limit_tiers", mode="before")(_parse_tiers)
    _split_modes = field_validator("rate_limit_fail_modes", mode="before")(
        lambda value: _pairs(value) if isinstance(value, str) else value
    )
    _split_lists = field_validator("trusted_proxies", "allowed_origins", mode="before")(_parse_list)
    _parse_quotas = field_validator(
        "public_rate_limit", "auth_rate_limit", "verify_rate_limit", mode="before"
    )(_parse_quota)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # raises ValueError naming it
        return value

    @field_validator("rate_limit_fail_modes")
    @classmethod
    def _known_classes(cls, value: dict[str, FailMode]) -> dict[str, FailMode]:
        unknown = set(value) - {"public", "auth", "verify"}
        if unknown:
            raise ValueError(f"unknown route classes {sorted(unknown)}; use public, auth, verify")
        return value

    def policy_for(self, upstream: str) -> UpstreamPolicy:
        """The upstream's own policy, or the default one."""
        return self.upstream_policies.get(upstream, self.upstream_policy)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if any("*" in origin for origin in self.allowed_origins):
            problems.append("ALLOWED_ORIGINS must list origins explicitly, without wildcards")
        return problems
