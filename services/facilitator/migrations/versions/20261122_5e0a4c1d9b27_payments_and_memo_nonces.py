"""payments and memo nonces: the durable replay guard

Revision ID: 5e0a4c1d9b27
Revises: c2feb76d85ce
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e0a4c1d9b27"
down_revision: str | None = "c2feb76d85ce"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("message_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(88), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("x402_version", sa.Integer, nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(44), nullable=False),
        sa.Column("amount", sa.String(20), nullable=False),
        sa.Column("pay_to", sa.String(44), nullable=False),
        sa.Column("payer", sa.String(44), nullable=False),
        sa.Column("fee_payer", sa.String(44), nullable=False),
        sa.Column("memo", sa.Text, nullable=True),
        sa.Column("resource", sa.Text, nullable=True),
        sa.Column("terms_hash", sa.String(64), nullable=False),
        sa.Column("signed_transaction", sa.Text, nullable=False),
        sa.Column("blockhash", sa.String(44), nullable=False),
        sa.Column("error_reason", sa.String(128), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("slot", sa.BigInteger, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("settled_at", _TIME, nullable=True),
        sa.Column("deadline_at", _TIME, nullable=False),
        sa.Column("announced_at", _TIME, nullable=True),
        sa.UniqueConstraint("message_hash", name="uq_payments_message_hash"),
        sa.UniqueConstraint("signature", name="uq_payments_signature"),
    )
    op.create_index("ix_payments_created_at_id", "payments", ["created_at", "id"])
    op.create_index("ix_payments_status", "payments", ["status"])
    op.create_index("ix_payments_payer", "payments", ["payer"])
    op.create_index("ix_payments_pay_to", "payments", ["pay_to"])
    op.create_table(
        "memo_nonces",
        sa.Column("network", sa.String(64), primary_key=True),
        sa.Column("pay_to", sa.String(44), primary_key=True),
        sa.Column("memo_hash", sa.String(64), primary_key=True),
        sa.Column("payment_id", sa.String(36), nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
    )
    op.create_index("ix_memo_nonces_expires_at", "memo_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_table("memo_nonces")
    op.drop_table("payments")
