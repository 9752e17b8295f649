"""The fiscal app: ``create_app()`` for uvicorn, ``load_settings()`` and ``MIGRATIONS``."""

from __future__ import annotations

from fastapi import FastAPI

from services.fiscal.config import FiscalSettings
from services.fiscal.models import idempotency_keys
from shared.app_factory import AppSpec, create_kassa_app
from shared.migrations import Migrations

MIGRATIONS = Migrations(app_name="fiscal", package="services.fiscal")


def load_settings() -> FiscalSettings:
    """Settings from the environment."""
    return FiscalSettings()


def create_app(settings: FiscalSettings | None = None) -> FastAPI:
    """The fiscal service."""
    return create_kassa_app(
        AppSpec(
            settings=settings or load_settings(),
            title="Kassa fiscal",
            description=(
                "Kenya Revenue Authority eTIMS fiscalisation through OSCU and VSCU: "
                "devices, items, invoices, credit notes, receipts."
            ),
            migrations=MIGRATIONS,
            idempotency_table=idempotency_keys,
        )
    )
