"""All SQL of the gateway."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import ApiKey


class ApiKeyRepository:
    """Queries about API keys."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        result = await self.session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def add(self, api_key: ApiKey) -> None:
        self.session.add(api_key)
        await self.session.flush()

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
