"""The async database: one engine per app (created in the lifespan), sessions per request.

One ``DATABASE_URL`` per app, either ``postgresql+asyncpg://`` or ``sqlite+aiosqlite://``. On
SQLite every transaction starts with ``BEGIN IMMEDIATE``: the embedded default then serialises
writers instead of failing with "database is locked" halfway through a read-then-write, which
keeps the same correctness guarantees Postgres gives through row locks.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import DateTime, Dialect, MetaData, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

# Constraint names that are stable across databases, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DB_POOL_IN_USE = Gauge(
    "kassa_db_pool_connections_in_use",
    "Database connections checked out of the pool.",
    ["app"],
)
DB_POOL_CAPACITY = Gauge(
    "kassa_db_pool_capacity",
    "Most connections the pool will open (pool size plus overflow).",
    ["app"],
)


class UtcDateTime(TypeDecorator[datetime]):
    """A ``timestamptz`` that is timezone-aware UTC on every backend.

    PostgreSQL keeps the zone; SQLite stores text and hands back naive values. Binding converts
    to UTC (a naive value is refused: its zone is unknowable), reading marks values as UTC, so
    comparisons and JSON replies are the same on both backends.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_metadata() -> MetaData:
    """A MetaData with Kassa's naming convention; each service has its own."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL (None for in-memory)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN itself (see _on_begin) instead of pysqlite's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _track_pool(engine: AsyncEngine, app_name: str, capacity: int) -> None:
    in_use = DB_POOL_IN_USE.labels(app=app_name)
    DB_POOL_CAPACITY.labels(app=app_name).set(capacity)

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(*_args: Any) -> None:
        in_use.inc()

    @event.listens_for(engine.sync_engine, "checkin")
    def _checkin(*_args: Any) -> None:
        in_use.dec()


class Database:
    """An app's engine and session factory; built in the lifespan, disposed on shutdown."""

    def __init__(
        self,
        url: str,
        *,
        app_name: str = "kassa",
        pool_size: int = 10,
        max_overflow: int = 10,
        pool_timeout_s: float = 5.0,
        pre_ping: bool = True,
        echo: bool = False,
    ) -> None:
        self.url = url
        if is_sqlite(url):
            path = sqlite_path(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
            _configure_sqlite(self.engine)
            capacity = 1
        else:
            self.engine = create_async_engine(
                url,
                echo=echo,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout_s,
                pool_pre_ping=pre_ping,
            )
            capacity = pool_size + max_overflow
        _track_pool(self.engine, app_name, capacity)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    def session(self) -> AsyncSession:
        """A new session; the caller commits or rolls back (requests: the route does)."""
        return self.sessionmaker()

    async def ping(self, timeout_s: float = 2.0) -> None:
        """Raise unless the database answers ``SELECT 1`` within the timeout."""
        async with asyncio.timeout(timeout_s), self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
