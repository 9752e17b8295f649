"""Alembic environment of the fiscal service."""

from services.fiscal.models import Base
from shared.migrations import run_migrations

run_migrations(Base.metadata)
