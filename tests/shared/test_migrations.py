"""Every app's migrations reach head on both backends, and its models match them exactly."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from shared.db import Database
from shared.migrations import Migrations, current_revision, upgrade_to_head
from shared.topology import APPS, AppEntry
from tests.conftest import DatabaseFactory


def _metadata(entry: AppEntry) -> MetaData:
    models = importlib.import_module(entry.module.rsplit(".", 1)[0] + ".models")
    metadata: MetaData = models.Base.metadata
    return metadata


@pytest.mark.parametrize("entry", APPS, ids=lambda entry: entry.name)
class TestMigrations:
    async def test_upgrade_reaches_head_and_models_match(
        self, databases: DatabaseFactory, entry: AppEntry
    ) -> None:
        migrations: Migrations = importlib.import_module(entry.module).MIGRATIONS
        url = await databases.create(entry.name)
        await upgrade_to_head(migrations, url)
        await upgrade_to_head(migrations, url)  # a second run is a no-op, not an error
        database = Database(url)
        try:
            assert await current_revision(database, migrations) == migrations.head()

            def differences(connection: Connection) -> list[object]:
                context = MigrationContext.configure(
                    connection, opts={"version_table": migrations.version_table}
                )
                return list(compare_metadata(context, _metadata(entry)))

            async with database.engine.connect() as connection:
                diff = await connection.run_sync(differences)
        finally:
            await database.dispose()
        assert diff == [], f"{entry.name}: models and migrations disagree: {diff}"
