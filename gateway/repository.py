"""All SQL of the gateway."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from gateway.models import ApiKey
from gateway.schemas import KeyState


def _state_condition(state: KeyState, now: datetime) -> ColumnElement[bool]:
    """``state`` as SQL: the same rule as :func:`gateway.schemas.key_state`."""
    not_revoked = ApiKey.revoked_at.is_(None)
    if state is KeyState.REVOKED:
        return ApiKey.revoked_at.is_not(None)
    if state is KeyState.EXPIRED:
        return and_(not_revoked, ApiKey.expires_at.is_not(None), ApiKey.expires_at <= now)
    return and_(not_revoked, or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))


class ApiKeyRepository:
    """Queries about API keys."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        result = await self.session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def get(self, key_id: str, *, fresh: bool = False) -> ApiKey | None:
        """The key ``key_id``; ``fresh`` re-reads a row this session already holds."""
        statement = select(ApiKey).where(ApiKey.id == key_id)
        if fresh:
            statement = statement.execution_options(populate_existing=True)
        result = await self.session.execute(statement)
        return result.scalar_one_or_none()

    async def add(self, api_key: ApiKey) -> None:
        self.session.add(api_key)
        await self.session.flush()

    async def page(
        self,
        *,
        now: datetime,
        limit: int,
        before_id: str | None = None,
        owner: str | None = None,
        state: KeyState | None = None,
    ) -> Sequence[ApiKey]:
        """Up to ``limit`` keys, newest first, before ``before_id`` (UUIDv7 ids sort by time)."""
        statement = select(ApiKey).order_by(ApiKey.id.desc()).limit(limit)
        if before_id is not None:
            statement = statement.where(ApiKey.id < before_id)
        if owner is not None:
            statement = statement.where(ApiKey.owner == owner)
        if state is not None:
            statement = statement.where(_state_condition(state, now))
        result = await self.session.execute(statement)
        return result.scalars().all()

    async def mark_rotated(
        self, key_id: str, successor_id: str, expires_at: datetime, now: datetime
    ) -> bool:
        """Point a live, never-rotated key at its successor and shorten its life.

        One conditional UPDATE decides between concurrent rotations: the first to commit wins
        and the others, re-checking the condition against the committed row (Postgres) or
        running after it (SQLite serialises writers), match nothing.
        """
        result = await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                ApiKey.replaced_by.is_(None),
                _state_condition(KeyState.ACTIVE, now),
            )
            .values(replaced_by=successor_id, expires_at=expires_at)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def revoke(self, key_id: str, now: datetime) -> bool:
        """Revoke ``key_id`` unless it already is; True when this call revoked it."""
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def touch_last_used(self, used: Mapping[str, datetime]) -> None:
        """Record when each key was last used, in one batched UPDATE; never moves it back."""
        if not used:
            return
        table = cast(Table, ApiKey.__table__)  # Core, so the UPDATE runs as one executemany
        await self.session.execute(
            update(table)
            .where(
                table.c.id == bindparam("key_id"),
                or_(table.c.last_used_at.is_(None), table.c.last_used_at < bindparam("used_at")),
            )
            .values(last_used_at=bindparam("used_at")),
            [{"key_id": key_id, "used_at": at} for key_id, at in used.items()],
        )

    async def revoke_owned_except(self, owner: str, keep_hash: str, now: datetime) -> int:
        """Revoke every live key of ``owner`` but one; returns how many."""
        result = await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.owner == owner,
                ApiKey.key_hash != keep_hash,
                ApiKey.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
