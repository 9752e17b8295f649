"""Configuration of the ledger_fee service (environment prefix ``LEDGER_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import KassaSettings


class LedgerSettings(KassaSettings):
    """Settings of the ledger_fee service."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_")
    app_name: ClassVar[str] = "ledger_fee"

    port: int = Field(default=8004, ge=1, le=65535, description="HTTP port.")
