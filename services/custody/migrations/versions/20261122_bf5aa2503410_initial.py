"""initial: the kit's idempotency keys

Revision ID: bf5aa2503410
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from services.custody.models import idempotency_keys
from shared.migrations import create_table_like, drop_table_like

revision: str = "bf5aa2503410"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_table_like(idempotency_keys)


def downgrade() -> None:
    drop_table_like(idempotency_keys)
