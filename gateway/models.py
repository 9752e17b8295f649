"""The gateway's tables: API keys (as HMAC hashes only) and idempotency keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import new_metadata
from shared.idempotency import idempotency_table


class Base(DeclarativeBase):
    metadata = new_metadata()


class ApiKey(Base):
    """An API key; the key itself is never stored, only its HMAC-SHA256."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(8))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    service: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rate_limit_tier: Mapped[str] = mapped_column(String(32), default="default")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The key that replaced this one in a rotation; set once, which makes rotation single-shot.
    replaced_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


idempotency_keys = idempotency_table(Base.metadata)
