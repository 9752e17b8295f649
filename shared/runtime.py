"""What an app holds while it runs: built in the lifespan, read by dependencies.

The typed state every app shares. Routes reach it through named dependencies
(:data:`SessionDep`, :data:`RuntimeDep`), never through module globals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database
from shared.http_client import HttpClient
from shared.migrations import Migrations
from shared.settings import KassaSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from shared.idempotency import IdempotencyRepository

# A named readiness check: raises (or returns a reason string) when not ready.
ReadinessCheck = Callable[[], Awaitable[str | None]]
# A named section of /ready that informs without gating (the gateway's view of its upstreams:
# one service down must not take the whole front door out of rotation).
ReadinessReport = Callable[[], Awaitable[dict[str, Any]]]

SESSION_STATE_KEY = "db_session"


@dataclass
class Lifecycle:
    """Whether the app is shutting down; /ready answers 503 from the first SIGTERM on."""

    draining: asyncio.Event = field(default_factory=asyncio.Event)

    def start_draining(self) -> None:
        self.draining.set()

    @property
    def is_draining(self) -> bool:
        return self.draining.is_set()


@dataclass
class Runtime:
    """The app's live resources; one per app instance."""

    settings: KassaSettings
    database: Database
    http: HttpClient
    lifecycle: Lifecycle
    migrations: Migrations | None = None
    expected_revision: str | None = None
    redis: Redis | None = None
    idempotency: IdempotencyRepository | None = None
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    readiness_reports: dict[str, ReadinessReport] = field(default_factory=dict)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(request: Request) -> AsyncSession:
    """The request's session; created on first use, committed or rolled back by the route."""
    state = request.scope.setdefault("state", {})
    session: AsyncSession | None = state.get(SESSION_STATE_KEY)
    if session is None:
        session = get_runtime(request).database.session()
        state[SESSION_STATE_KEY] = session
    return session


# FastAPI runs a plain ``def`` dependency in a worker thread; these are coroutines so that
# resolving them costs no thread hop on every request.
async def _runtime_dependency(request: Request) -> Runtime:
    return get_runtime(request)


async def _session_dependency(request: Request) -> AsyncSession:
    return get_session(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime_dependency)]
SessionDep = Annotated[AsyncSession, Depends(_session_dependency)]
