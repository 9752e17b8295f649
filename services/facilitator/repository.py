"""Every query of the facilitator: payments and memo nonces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.facilitator.models import UNFINISHED_STATUSES, MemoNonce, Payment, PaymentStatus
from shared.pagination import Cursor


@dataclass(frozen=True)
class PaymentFilter:
    """What a payments listing is narrowed to; None means any."""

    payer: str | None = None
    pay_to: str | None = None
    status: PaymentStatus | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None


_CLAIMED = exists().where(Payment.message_hash == bindparam("message_hash"))
_MEMO_USED = exists().where(
    MemoNonce.network == bindparam("network"),
    MemoNonce.pay_to == bindparam("pay_to"),
    MemoNonce.memo_hash == bindparam("memo_hash"),
    MemoNonce.expires_at > bindparam("now"),
)
# Built once: the verify hot path binds values into a cached statement.
_REPLAY_STATE = select(_CLAIMED, _MEMO_USED)
_NO_MEMO = ("", "", "")


class ReplayGuard:
    """The verify hot path's one question, on a bare connection (no ORM session)."""

    def __init__(self, engine: AsyncEngine) -> None:
        # One read needs no transaction: autocommit spares the BEGIN and ROLLBACK round trips
        # (0.46 -> 0.29 ms of CPU and 0.61 -> 0.34 ms per check, measured on PostgreSQL).
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def state(
        self, message_hash: str, nonce: tuple[str, str, str] | None, now: datetime
    ) -> tuple[bool, bool]:
        """(claimed, memo used) in one round trip."""
        network, pay_to, memo_hash = nonce or _NO_MEMO
        values = {
            "message_hash": message_hash,
            "network": network,
            "pay_to": pay_to,
            "memo_hash": memo_hash,
            "now": now,
        }
        async with self._engine.connect() as connection:
            claimed, used = (await connection.execute(_REPLAY_STATE, values)).one()
        return bool(claimed), bool(used)


class PaymentRepository:
    """Payments and memo nonces, over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_message_hash(self, message_hash: str) -> Payment | None:
        return await self.session.scalar(
            select(Payment).where(Payment.message_hash == message_hash)
        )

    async def get(self, payment_id: str) -> Payment | None:
        return await self.session.get(Payment, payment_id)

    async def lock(self, payment_id: str) -> Payment | None:
        """The payment, locked until the transaction ends (a no-op lock on SQLite)."""
        return await self.session.scalar(
            select(Payment).where(Payment.id == payment_id).with_for_update()
        )

    def add(self, payment: Payment, nonce: MemoNonce | None) -> None:
        self.session.add(payment)
        if nonce is not None:
            self.session.add(nonce)

    async def flush(self) -> None:
        """Write pending rows now, so a unique constraint decides inside this transaction."""
        await self.session.flush()

    async def delete_expired_nonce(
        self, network: str, pay_to: str, memo_hash: str, now: datetime
    ) -> None:
        """Free a memo whose nonce expired, so the primary key can take it again."""
        await self.session.execute(
            delete(MemoNonce).where(
                MemoNonce.network == network,
                MemoNonce.pay_to == pay_to,
                MemoNonce.memo_hash == memo_hash,
                MemoNonce.expires_at <= now,
            )
        )

    async def delete_expired_nonces(self, now: datetime, batch: int = 1000) -> int:
        """Remove up to ``batch`` expired memo nonces; the count removed."""
        expired = (
            select(MemoNonce.network, MemoNonce.pay_to, MemoNonce.memo_hash)
            .where(MemoNonce.expires_at <= now)
            .limit(batch)
        )
        rows = (await self.session.execute(expired)).all()
        if not rows:
            return 0
        await self.session.execute(
            delete(MemoNonce).where(
                or_(
                    *(
                        and_(
                            MemoNonce.network == network,
                            MemoNonce.pay_to == pay_to,
                            MemoNonce.memo_hash == memo_hash,
                        )
                        for network, pay_to, memo_hash in rows
                    )
                )
            )
        )
        return len(rows)

    async def finish(self, payment_id: str, status: PaymentStatus, **values: object) -> bool:
        """Move an unfinished payment to ``status``; False when it was already final.

        The condition makes every transition safe to race: a retry, a ``GET`` and the
        reconcile task may all learn the outcome at once, and only the first writes it.
        """
        result = await self.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.status.in_(UNFINISHED_STATUSES))
            .values(status=status, **values)
        )
        return bool(getattr(result, "rowcount", 0))

    async def unfinished(self, limit: int, created_before: datetime) -> Sequence[Payment]:
        """Settling or pending payments older than ``created_before``, oldest first."""
        query = (
            select(Payment)
            .where(Payment.status.in_(UNFINISHED_STATUSES), Payment.created_at < created_before)
            .order_by(Payment.created_at)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def count_unfinished(self) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(Payment).where(Payment.status.in_(UNFINISHED_STATUSES))
        )
        return int(count or 0)

    async def claim_unannounced(self, limit: int) -> Sequence[Payment]:
        """Settled payments not yet announced to the ledger (locked until commit)."""
        query = (
            select(Payment)
            .where(Payment.status == PaymentStatus.SETTLED, Payment.announced_at.is_(None))
            .order_by(Payment.settled_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.scalars(query)).all()

    async def page(
        self, where: PaymentFilter, *, limit: int, after: Cursor | None
    ) -> Sequence[Payment]:
        """Newest first; ``limit`` rows (ask one more to learn whether a next page exists)."""
        query = select(Payment)
        if where.payer is not None:
            query = query.where(Payment.payer == where.payer)
        if where.pay_to is not None:
            query = query.where(Payment.pay_to == where.pay_to)
        if where.status is not None:
            query = query.where(Payment.status == where.status)
        if where.created_from is not None:
            query = query.where(Payment.created_at >= where.created_from)
        if where.created_before is not None:
            query = query.where(Payment.created_at < where.created_before)
        if after is not None:
            query = query.where(
                or_(
                    Payment.created_at < after.at,
                    and_(Payment.created_at == after.at, Payment.id < after.id),
                )
            )
        query = query.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit)
        return (await self.session.scalars(query)).all()
