"""``UtcDateTime`` reads back timezone-aware UTC on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, Table, insert, select
from sqlalchemy.exc import StatementError

from shared.db import Database, UtcDateTime, new_metadata
from tests.conftest import DatabaseFactory

metadata = new_metadata()
moments = Table(
    "moments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime, nullable=False),
)
NAIROBI = timezone(timedelta(hours=3))


async def test_aware_times_come_back_as_the_same_instant_in_utc(
    databases: DatabaseFactory,
) -> None:
    database = Database(await databases.create("utc"))
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            at = datetime(2026, 11, 22, 12, 30, tzinfo=NAIROBI)
            await connection.execute(insert(moments).values(id=1, at=at))
            stored = (await connection.execute(select(moments.c.at))).scalar_one()
            later = (
                await connection.execute(
                    select(moments.c.id).where(moments.c.at < at + timedelta(seconds=1))
                )
            ).scalar_one()
        assert stored == at
        assert stored.tzinfo is not None
        assert stored.utcoffset() == timedelta(0)
        assert stored.hour == 9
        assert later == 1
    finally:
        await database.dispose()


async def test_a_naive_time_is_refused(databases: DatabaseFactory) -> None:
    database = Database(await databases.create("utc_naive"))
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            with pytest.raises(StatementError, match="naive datetime"):
                await connection.execute(insert(moments).values(id=1, at=datetime(2026, 1, 1)))
    finally:
        await database.dispose()
