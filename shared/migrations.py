"""Alembic per app: each app's ``migrations/`` folder, its own version table, its own database.

Apps do not migrate themselves on start-up (several replicas would race); ``make migrate``,
``make run`` and the Kubernetes migration Job run :func:`upgrade_to_head`, and ``/ready`` stays
503 until the database is at the head revision the code expects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, inspect, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from shared.db import Database, is_sqlite


@dataclass(frozen=True)
class Migrations:
    """Where an app's migration scripts live and which version table records them."""

    app_name: str
    package: str  # e.g. "services.ledger_fee"

    @property
    def script_location(self) -> Path:
        return Path(str(resources.files(self.package) / "migrations"))

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.app_name}"

    def config(self, database_url: str) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(self.script_location))
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
        cfg.set_main_option("version_table", self.version_table)
        cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
        return cfg

    def head(self) -> str | None:
        """The newest revision in the code."""
        return ScriptDirectory.from_config(self.config("sqlite://")).get_current_head()


async def upgrade_to_head(migrations: Migrations, database_url: str) -> None:
    """Apply every pending migration (Alembic's runner is synchronous: run it in a thread)."""
    if is_sqlite(database_url):
        Database(database_url, app_name=migrations.app_name)  # creates the folder of the file
    await asyncio.to_thread(command.upgrade, migrations.config(database_url), "head")


def new_revision(migrations: Migrations, database_url: str, message: str) -> None:
    """Autogenerate a revision from the difference between the models and the database."""
    command.revision(migrations.config(database_url), message=message, autogenerate=True)


async def current_revision(database: Database, migrations: Migrations) -> str | None:
    """The revision recorded in the database, or None before the first migration."""
    async with database.engine.connect() as connection:
        has_table = await connection.run_sync(
            lambda sync: inspect(sync).has_table(migrations.version_table)
        )
        if not has_table:
            return None
        result = await connection.execute(
            text(f"SELECT version_num FROM {migrations.version_table}")  # noqa: S608 - our own name
        )
        return result.scalar_one_or_none()


def run_migrations(target_metadata: MetaData) -> None:
    """The body of every app's ``migrations/env.py``."""
    cfg = context.config
    version_table = cfg.get_main_option("version_table") or "alembic_version"
    url = cfg.get_main_option("sqlalchemy.url") or ""

    def configure(connection: Connection | None) -> None:
        context.configure(
            connection=connection,
            url=None if connection is not None else url,
            target_metadata=target_metadata,
            version_table=version_table,
            render_as_batch=is_sqlite(url),  # SQLite alters tables by copying them
            compare_type=True,
        )

    if context.is_offline_mode():
        configure(None)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run_sync(connection: Connection) -> None:
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = async_engine_from_config(
            {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(run_sync)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run_async())


def create_table_like(table: Table) -> None:
    """Inside a migration: create ``table`` as defined in code (columns, keys, indexes).

    For tables the kit defines for every app (``idempotency_keys``), so each app's first
    migration does not spell the same columns out again.
    """
    op.create_table(table.name, *(column._copy() for column in table.columns))
    for index in table.indexes:
        op.create_index(
            index.name or f"ix_{table.name}", table.name, [c.name for c in index.columns]
        )


def drop_table_like(table: Table) -> None:
    """Inside a migration: drop a table created by :func:`create_table_like`."""
    for index in table.indexes:
        op.drop_index(index.name or f"ix_{table.name}", table_name=table.name)
    op.drop_table(table.name)
