"""Configuration of the fiscal service (environment prefix ``FISCAL_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import KassaSettings


class FiscalSettings(KassaSettings):
    """Settings of the fiscal service."""

    model_config = SettingsConfigDict(env_prefix="FISCAL_")
    app_name: ClassVar[str] = "fiscal"

    port: int = Field(default=8003, ge=1, le=65535, description="HTTP port.")
