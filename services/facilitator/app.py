"""The facilitator app: ``create_app()`` for uvicorn, ``load_settings()`` and ``MIGRATIONS``."""

from __future__ import annotations

from fastapi import FastAPI

from services.facilitator.config import FacilitatorSettings
from services.facilitator.models import idempotency_keys
from shared.app_factory import AppSpec, create_kassa_app
from shared.migrations import Migrations

MIGRATIONS = Migrations(app_name="facilitator", package="services.facilitator")


def load_settings() -> FacilitatorSettings:
    """Settings from the environment."""
    return FacilitatorSettings()


def create_app(settings: FacilitatorSettings | None = None) -> FastAPI:
    """The facilitator service."""
    return create_kassa_app(
        AppSpec(
            settings=settings or load_settings(),
            title="Kassa facilitator",
            description=(
                "x402 payment verification and settlement on Solana (SPL tokens), with "
                "durable nonce and replay protection."
            ),
            migrations=MIGRATIONS,
            idempotency_table=idempotency_keys,
        )
    )
