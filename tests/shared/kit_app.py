"""A small app built with the kit exactly as a service is, with routes that exercise it."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, ClassVar

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Column, Integer, String, Table, func, insert, select

from shared.app_factory import AppSpec, create_kassa_app
from shared.db import new_metadata
from shared.errors import Conflict, problem_responses
from shared.idempotency import idempotency_table
from shared.identity import Caller, CallerDep, require_callers, require_scopes
from shared.routing import kassa_router
from shared.runtime import SessionDep
from shared.settings import KassaSettings

metadata = new_metadata()
idempotency_keys = idempotency_table(metadata)
widgets = Table(
    "widgets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
)


class KitSettings(KassaSettings):
    model_config = SettingsConfigDict(env_prefix="KIT_")
    app_name: ClassVar[str] = "kit"


class WidgetCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=0)


class WidgetOutOfStock(Conflict):
    slug = "widget-out-of-stock"
    title = "Widget out of stock"


router = kassa_router()


async def _hold(request: Request) -> None:
    gate: asyncio.Event | None = getattr(request.app.state, "gate", None)
    if gate is not None:
        await gate.wait()


@router.post("/widgets", status_code=201)
async def create_widget(
    body: WidgetCreate, session: SessionDep, caller: CallerDep, request: Request
) -> dict[str, Any]:
    # Held before writing: on SQLite a held write transaction would block every other writer.
    await _hold(request)
    result = await session.execute(insert(widgets).values(name=body.name, quantity=body.quantity))
    widget_id = result.inserted_primary_key[0]  # type: ignore[attr-defined]
    return {"id": widget_id, "name": body.name, "owner": caller.owner}


@router.post("/widgets/then-crash")
async def create_then_crash(body: WidgetCreate, session: SessionDep) -> dict[str, Any]:
    await session.execute(insert(widgets).values(name=body.name, quantity=body.quantity))
    raise RuntimeError("database password is hunter2")  # must never reach the client


@router.post("/widgets/refused", responses=problem_responses(WidgetOutOfStock))
async def create_refused(body: WidgetCreate, session: SessionDep) -> dict[str, Any]:
    await session.execute(insert(widgets).values(name=body.name, quantity=body.quantity))
    raise WidgetOutOfStock(f"No stock for {body.name}.", remaining=0)


@router.get("/widgets/count")
async def count_widgets(session: SessionDep) -> dict[str, int]:
    total = (await session.execute(select(func.count()).select_from(widgets))).scalar_one()
    return {"count": int(total)}


@router.get("/items/{item_id}")
async def get_item(item_id: int, limit: int = 10) -> dict[str, int]:
    return {"item_id": item_id, "limit": limit}


@router.get("/admin-only")
async def admin_only(caller: Annotated[Caller, Depends(require_scopes("admin"))]) -> dict[str, str]:
    return {"owner": caller.owner}


@router.get("/ledger-writers")
async def ledger_writers(
    caller: Annotated[Caller, Depends(require_callers("custody", "fiscal"))],
) -> dict[str, str | None]:
    return {"service": caller.service}


@router.get("/whoami")
async def whoami(caller: CallerDep) -> dict[str, Any]:
    return {"owner": caller.owner, "scopes": sorted(caller.scopes), "key_id": caller.key_id}


def create_kit_app(database_url: str, public_keys: str, **settings: Any) -> FastAPI:
    """The kit app on ``database_url``, trusting ``public_keys``."""
    return create_kassa_app(
        AppSpec(
            settings=KitSettings(
                database_url=database_url, identity_public_keys=public_keys, **settings
            ),
            title="kit",
            description="test app",
            routers=[router],
            idempotency_table=idempotency_keys,
        )
    )
