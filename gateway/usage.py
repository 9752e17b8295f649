"""``last_used_at``, written lazily: one batched UPDATE per interval, never one per request."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.repository import ApiKeyRepository
from shared.logging import get_logger

log = get_logger(__name__)


class UsageRecorder:
    """Remembers when each key was last used and flushes the batch periodically."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval_s: float) -> None:
        self._sessions = sessions
        self._interval_s = interval_s
        self._pending: dict[str, float] = {}

    def record(self, key_id: str, at: float) -> None:
        """Note a use; costs a dict write on the hot path."""
        self._pending[key_id] = at

    async def flush(self) -> int:
        """Write what is pending; returns how many keys were updated."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        used = {key_id: datetime.fromtimestamp(at, UTC) for key_id, at in pending.items()}
        try:
            async with self._sessions() as session, session.begin():
                await ApiKeyRepository(session).touch_last_used(used)
        except (SQLAlchemyError, OSError) as exc:
            # Keep the newest of what failed for the next round; usage is advisory.
            for key_id, at in pending.items():
                self._pending[key_id] = max(at, self._pending.get(key_id, 0.0))
            log.warning("last_used_flush_failed", error=str(exc), keys=len(pending))
            return 0
        return len(used)

    async def run(self) -> None:
        """Flush every interval until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())
