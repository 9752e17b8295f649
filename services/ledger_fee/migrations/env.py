"""Alembic environment of the ledger_fee service."""

from services.ledger_fee.models import Base
from shared.migrations import run_migrations

run_migrations(Base.metadata)
