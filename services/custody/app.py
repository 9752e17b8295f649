"""The custody app: ``create_app()`` for uvicorn, ``load_settings()`` and ``MIGRATIONS``."""

from __future__ import annotations

from fastapi import FastAPI

from services.custody.config import CustodySettings
from services.custody.models import idempotency_keys
from shared.app_factory import AppSpec, create_kassa_app
from shared.migrations import Migrations

MIGRATIONS = Migrations(app_name="custody", package="services.custody")


def load_settings() -> CustodySettings:
    """Settings from the environment."""
    return CustodySettings()


def create_app(settings: CustodySettings | None = None) -> FastAPI:
    """The custody service."""
    return create_kassa_app(
        AppSpec(
            settings=settings or load_settings(),
            title="Kassa custody",
            description=(
                "The TrovoTech client (wallets, token mints, payouts, telemetry on the "
                "Bantu chain) and TrovoTech's signed webhooks."
            ),
            migrations=MIGRATIONS,
            idempotency_table=idempotency_keys,
        )
    )
