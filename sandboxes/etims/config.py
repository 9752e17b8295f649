"""Settings of the eTIMS sandbox (``ETIMS_SANDBOX_`` prefix).

The sandbox is not a Kassa service (no database, no caller identity), so it has its own small
settings class rather than ``KassaSettings``. Lists read from the environment are comma
separated (``ETIMS_SANDBOX_OSCU_SERIALS=DEV-1,DEV-2``); ``fault_rates`` is JSON
(``ETIMS_SANDBOX_FAULT_RATES='{"999": 0.01, "timeout_after_commit": 0.005}'``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

APP_NAME = "etims"
# shared.topology lists the sandbox on this port (the third sandbox after Solana and TrovoTech).
DEFAULT_PORT = 8103
# Fault kinds a rate may be given for; the same names as the fault API's rule kinds.
FAULT_KINDS = ("894", "990", "999", "timeout_after_commit", "drop_after_commit")

SerialList = Annotated[list[str], NoDecode]


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class EtimsSandboxSettings(BaseSettings):
    """Where the sandbox listens, which devices KRA knows, and which faults it injects."""

    model_config = SettingsConfigDict(env_prefix="ETIMS_SANDBOX_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="HTTP port.")
    oscu_serials: SerialList = Field(
        default=["KASSA-OSCU-001", "KASSA-OSCU-002", "KASSA-OSCU-003"],
        description="OSCU device serials KRA has approved (any taxpayer may initialise one).",
    )
    vscu_serials: SerialList = Field(
        default=["KASSA-VSCU-001", "KASSA-VSCU-002"],
        description="VSCU device serials KRA has approved.",
    )
    oscu_serial_prefix: str | None = Field(
        default="SBX-OSCU-",
        description="Every serial starting with this is an approved OSCU device (tests, bench).",
    )
    vscu_serial_prefix: str | None = Field(
        default="SBX-VSCU-", description="Every serial starting with this is an approved VSCU."
    )
    key_secret: str = Field(
        default="kassa/sandboxes/etims",
        description=(
            "Seeds the derivation of cmcKeys and device numbers; sandbox keys are public by "
            "construction and must never protect anything real."
        ),
    )
    receipt_numbers_as_text: bool = Field(
        default=False,
        description='curRcptNo/totRcptNo as strings ("7"), as some KRA replies send them.',
    )
    latency_ms: int = Field(default=0, ge=0, description="Added before every eTIMS reply.")
    hang_ms: int = Field(
        default=5_000,
        ge=0,
        description="How late a timeout-after-commit reply comes (beyond the client's timeout).",
    )
    fault_rates: dict[str, float] = Field(
        default_factory=dict,
        description="Probability per eTIMS call of each fault kind (894, 990, 999, ...).",
    )
    fault_seed: int | None = Field(
        default=None, description="Seed for rate-based faults, for reproducible runs."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(default=True, description="JSON lines (true) or readable text.")

    @field_validator("oscu_serials", "vscu_serials", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("fault_rates")
    @classmethod
    def _known_fault_kinds(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, rate in value.items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate of {kind} must be between 0 and 1, got {rate}")
        return value
