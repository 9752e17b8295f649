"""Alembic environment of the custody service."""

from services.custody.models import Base
from shared.migrations import run_migrations

run_migrations(Base.metadata)
