"""Configuration of the facilitator service (environment prefix ``FACILITATOR_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import KassaSettings


class FacilitatorSettings(KassaSettings):
    """Settings of the facilitator service."""

    model_config = SettingsConfigDict(env_prefix="FACILITATOR_")
    app_name: ClassVar[str] = "facilitator"

    port: int = Field(default=8001, ge=1, le=65535, description="HTTP port.")
