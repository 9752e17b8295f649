"""Configuration of the custody service (environment prefix ``CUSTODY_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import KassaSettings


class CustodySettings(KassaSettings):
    """Settings of the custody service."""

    model_config = SettingsConfigDict(env_prefix="CUSTODY_")
    app_name: ClassVar[str] = "custody"

    port: int = Field(default=8002, ge=1, le=65535, description="HTTP port.")
