"""The ledger_fee app: ``create_app()`` for uvicorn, ``load_settings()`` and ``MIGRATIONS``."""

from __future__ import annotations

from fastapi import FastAPI

from services.ledger_fee.config import LedgerSettings
from services.ledger_fee.models import idempotency_keys
from shared.app_factory import AppSpec, create_kassa_app
from shared.migrations import Migrations

MIGRATIONS = Migrations(app_name="ledger_fee", package="services.ledger_fee")


def load_settings() -> LedgerSettings:
    """Settings from the environment."""
    return LedgerSettings()


def create_app(settings: LedgerSettings | None = None) -> FastAPI:
    """The ledger_fee service."""
    return create_kassa_app(
        AppSpec(
            settings=settings or load_settings(),
            title="Kassa ledger and fees",
            description=(
                "A double-entry ledger, the fee schedule, charges, payment records, "
                "refunds, invoices and an append-only audit trail."
            ),
            migrations=MIGRATIONS,
            idempotency_table=idempotency_keys,
        )
    )
