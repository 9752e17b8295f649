"""The facilitator service's tables (its own database, its own metadata).

``payments`` is the durable replay guard: the message hash and the transaction signature are
unique there forever, and both are written in the transaction that moves a payment to
``settling``, before anything is broadcast. ``memo_nonces`` keeps a settled memo from paying
twice for the same order while it lives.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UtcDateTime, new_metadata
from shared.idempotency import idempotency_table


class Base(DeclarativeBase):
    metadata = new_metadata()


class PaymentStatus(enum.StrEnum):
    """Where a settlement stands; ``settled`` and ``failed`` are final."""

    SETTLING = "settling"  # claimed and signed; broadcast is happening or happened
    PENDING = "pending"  # broadcast, not yet confirmed when the caller was answered
    SETTLED = "settled"
    FAILED = "failed"


UNFINISHED_STATUSES = (PaymentStatus.SETTLING, PaymentStatus.PENDING)


class Payment(Base):
    """One payment the facilitator was asked to settle."""

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    message_hash: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(String(88), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    x402_version: Mapped[int] = mapped_column(Integer)
    network: Mapped[str] = mapped_column(String(64))
    asset: Mapped[str] = mapped_column(String(44))
    # u64 base units as decimal digits: exact on every backend (SQLite's integers stop at 2^63).
    amount: Mapped[str] = mapped_column(String(20))
    pay_to: Mapped[str] = mapped_column(String(44))
    payer: Mapped[str] = mapped_column(String(44))
    fee_payer: Mapped[str] = mapped_column(String(44))
    memo: Mapped[str | None] = mapped_column(Text, nullable=True)
    resource: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the payment was checked against; the same transaction with other terms is a
    # different request, answered duplicate_settlement.
    terms_hash: Mapped[str] = mapped_column(String(64))
    # Fully signed, so a reconcile can resend the same bytes while the blockhash lives.
    signed_transaction: Mapped[str] = mapped_column(Text)
    blockhash: Mapped[str] = mapped_column(String(44))
    error_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    slot: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Until the payment was settled by this time, a retry or a reconcile pass may still wait.
    deadline_at: Mapped[datetime] = mapped_column(UtcDateTime)
    announced_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (
        Index("ix_payments_created_at_id", "created_at", "id"),
        Index("ix_payments_status", "status"),
        Index("ix_payments_payer", "payer"),
        Index("ix_payments_pay_to", "pay_to"),
    )


class MemoNonce(Base):
    """A memo that has paid ``pay_to`` on ``network``; refused again until ``expires_at``."""

    __tablename__ = "memo_nonces"

    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    pay_to: Mapped[str] = mapped_column(String(44), primary_key=True)
    memo_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(36))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


idempotency_keys = idempotency_table(Base.metadata)
