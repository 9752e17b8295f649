"""``Idempotency-Key`` for POST routes, kept in the app's own database.

Same key and same request: the stored reply is replayed (``Idempotent-Replayed: true``).
Same key, different request: 422. Same key while the first is still running: 409.

The key is claimed in a short transaction of its own; the reply is stored in the **same**
transaction as the route's effects, so either both are committed or neither is. A claim whose
process died keeps nothing but a lease, which a later retry takes over once it runs out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from shared.errors import Conflict, UnprocessableContent

IDEMPOTENCY_HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
MAX_KEY_LENGTH = 255


class IdempotencyKeyInUse(Conflict):
    slug = "idempotency-key-in-use"
    title = "A request with this Idempotency-Key is still being processed"


class IdempotencyKeyMismatch(UnprocessableContent):
    slug = "idempotency-key-mismatch"
    title = "Idempotency-Key reused with a different request"


class IdempotencyKeyInvalid(UnprocessableContent):
    slug = "idempotency-key-invalid"
    title = "Invalid Idempotency-Key"


def idempotency_table(metadata: MetaData) -> Table:
    """The ``idempotency_keys`` table in an app's own metadata (each app has its own)."""
    return Table(
        "idempotency_keys",
        metadata,
        Column("caller", String(128), primary_key=True),
        Column("key", String(MAX_KEY_LENGTH), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("state", String(16), nullable=False),
        Column("locked_until", DateTime(timezone=True), nullable=False),
        Column("response_status", Integer, nullable=True),
        Column("response_headers", JSON, nullable=True),
        Column("response_body", LargeBinary, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What makes two requests "the same" for an idempotency key."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: ours to run, or a stored reply to replay."""

    acquired: bool
    replay: StoredReply | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything Kassa stores is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class IdempotencyRepository:
    """All SQL about idempotency keys."""

    def __init__(
        self,
        table: Table,
        *,
        lease: timedelta = timedelta(seconds=60),
        retention: timedelta = timedelta(hours=24),
    ) -> None:
        self.table = table
        self.lease = lease
        self.retention = retention

    async def claim(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        caller: str,
        key: str,
        request_hash: str,
    ) -> Claim:
        """Claim ``key`` for this request in its own short transaction."""
        now = _utcnow()
        async with sessionmaker() as session:
            try:
                async with session.begin():
                    await session.execute(
                        insert(self.table).values(
                            caller=caller, key=key, **self._fresh_claim(request_hash, now)
                        )
                    )
                return Claim(acquired=True)
            except IntegrityError:
                pass
            async with session.begin():
                return await self._resolve_existing(session, caller, key, request_hash, now)

    async def _resolve_existing(
        self, session: AsyncSession, caller: str, key: str, request_hash: str, now: datetime
    ) -> Claim:
        row = (
            await session.execute(
                select(self.table).where(self._match(caller, key)).with_for_update()
            )
        ).one_or_none()
        if row is None:  # released between our insert and this read: take it
            await session.execute(
                insert(self.table).values(
                    caller=caller, key=key, **self._fresh_claim(request_hash, now)
                )
            )
            return Claim(acquired=True)
        expired = _aware(row.expires_at) <= now
        if not expired and row.request_hash != request_hash:
            raise IdempotencyKeyMismatch(
                "This Idempotency-Key was used with a different request body or path; "
                "use a new key for a new request."
            )
        if not expired and row.state == "completed":
            return Claim(
                acquired=False,
                replay=StoredReply(
                    status=int(row.response_status),
                    headers=[(str(k), str(v)) for k, v in row.response_headers or []],
                    body=bytes(row.response_body or b""),
                ),
            )
        if not expired and _aware(row.locked_until) > now:
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is still in progress; retry later.",
                headers={"Retry-After": "1"},
            )
        # The earlier holder's lease ran out (its effects were never committed) or the record
        # outlived its retention: this request takes the key over.
        await session.execute(
            update(self.table)
            .where(self._match(caller, key))
            .values(
                response_status=None,
                response_headers=None,
                response_body=None,
                **self._fresh_claim(request_hash, now),
            )
        )
        return Claim(acquired=True)

    async def complete(
        self, session: AsyncSession, caller: str, key: str, reply: StoredReply
    ) -> None:
        """Store the reply inside the route's own transaction."""
        await session.execute(
            update(self.table)
            .where(self._match(caller, key))
            .values(
                state="completed",
                response_status=reply.status,
                response_headers=[list(pair) for pair in reply.headers],
                response_body=reply.body,
            )
        )

    async def complete_alone(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        caller: str,
        key: str,
        reply: StoredReply,
    ) -> None:
        """Store a reply whose route made no effects (a refused request)."""
        async with sessionmaker() as session, session.begin():
            await self.complete(session, caller, key, reply)

    async def release(
        self, sessionmaker: async_sessionmaker[AsyncSession], caller: str, key: str
    ) -> None:
        """Forget a claim whose request failed unexpectedly, so a retry can run it."""
        async with sessionmaker() as session, session.begin():
            await session.execute(
                delete(self.table).where(
                    and_(self._match(caller, key), self.table.c.state == "in_flight")
                )
            )

    async def delete_expired(self, session: AsyncSession, now: datetime | None = None) -> int:
        """Remove records past their retention; returns how many."""
        result = await session.execute(
            delete(self.table).where(self.table.c.expires_at <= (now or _utcnow()))
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def _fresh_claim(self, request_hash: str, now: datetime) -> dict[str, object]:
        """The columns of a claim just taken by a request."""
        return {
            "request_hash": request_hash,
            "state": "in_flight",
            "locked_until": now + self.lease,
            "created_at": now,
            "expires_at": now + self.retention,
        }

    def _match(self, caller: str, key: str) -> ColumnElement[bool]:
        return and_(self.table.c.caller == caller, self.table.c.key == key)
