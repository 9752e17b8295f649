"""Fixtures for the kit's tests: the kit app on each backend, with its tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import delete

from shared.db import Database
from shared.identity import AssertionSigner
from tests.conftest import DatabaseFactory, assertion_header, running
from tests.shared.kit_app import create_kit_app, metadata


@dataclass
class Kit:
    """The running kit app and a client that calls it as a gateway-vouched caller."""

    app: FastAPI
    client: httpx.AsyncClient


@pytest_asyncio.fixture(scope="session")
async def kit_database_url(databases: DatabaseFactory) -> str:
    url = await databases.create("kit")
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    await database.dispose()
    return url


@pytest_asyncio.fixture
async def kit(
    kit_database_url: str, signing_key_pair: tuple[str, str], signer: AssertionSigner
) -> AsyncIterator[Kit]:
    app = create_kit_app(kit_database_url, signing_key_pair[1])
    async with running(app) as client:
        client.headers.update(assertion_header(signer, "kit"))
        yield Kit(app=app, client=client)
    database = Database(kit_database_url)
    async with database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(delete(table))
    await database.dispose()
