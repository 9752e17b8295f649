"""Alembic environment of the facilitator service."""

from services.facilitator.models import Base
from shared.migrations import run_migrations

run_migrations(Base.metadata)
