"""The facilitator's background work; each step is safe to run in every replica at once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.facilitator.announcements import SettlementAnnouncer
from services.facilitator.fee_payers import FeePayers
from services.facilitator.metrics import ANNOUNCEMENTS, PENDING_SETTLEMENTS
from services.facilitator.models import Payment
from services.facilitator.repository import PaymentRepository
from services.facilitator.rpc import RpcError, RpcUnavailable, SolanaRpc
from services.facilitator.service import utcnow
from services.facilitator.settlement import Settlement
from shared.logging import get_logger

log = get_logger(__name__)

RECONCILE_BATCH = 256  # getSignatureStatuses takes up to 256 signatures per call
ANNOUNCE_BATCH = 50


async def remove_expired_nonces(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Delete memo nonces past their expiry, a batch per transaction."""
    removed = 0
    while True:
        async with sessions() as session, session.begin():
            batch = await PaymentRepository(session).delete_expired_nonces(utcnow())
        removed += batch
        if batch == 0:
            break
    if removed:
        log.info("memo_nonces_expired", removed=removed)
    return removed


async def reconcile_unfinished(settlement: Settlement, grace: timedelta) -> int:
    """Finish settling/pending payments from what the chain says, in batched status calls.

    Payments younger than ``grace`` are left to the request still waiting on them.
    """
    finished = 0
    async with settlement.sessions() as session:
        repository = PaymentRepository(session)
        unfinished = list(await repository.unfinished(RECONCILE_BATCH, utcnow() - grace))
    finished = await settlement.reconcile(unfinished)
    async with settlement.sessions() as session:
        PENDING_SETTLEMENTS.set(await PaymentRepository(session).count_unfinished())
    if finished:
        log.info("settlements_reconciled", finished=finished)
    return finished


async def refresh_fee_payers(fee_payers: FeePayers, rpc: SolanaRpc, airdrop_lamports: int) -> None:
    """Read every fee payer's balance; on a development cluster, top up those below the floor."""
    for address in fee_payers.addresses:
        try:
            fee_payers.record_balance(address, await rpc.balance(address))
        except (RpcError, RpcUnavailable) as exc:
            log.warning("fee_payer_balance_unread", fee_payer=address, error=str(exc))
            continue
        if fee_payers.below_floor(address):
            log.warning(
                "fee_payer_below_floor",
                fee_payer=address,
                balance=fee_payers.balance(address),
                floor=fee_payers.floor_lamports,
            )
            if airdrop_lamports:
                await _airdrop(rpc, address, airdrop_lamports)


async def _airdrop(rpc: SolanaRpc, address: str, lamports: int) -> None:
    try:
        signature = await rpc.request_airdrop(address, lamports)
    except (RpcError, RpcUnavailable) as exc:
        log.warning("fee_payer_airdrop_failed", fee_payer=address, error=str(exc))
        return
    log.info("fee_payer_airdrop", fee_payer=address, lamports=lamports, signature=signature)


async def announce_settled(
    sessions: async_sessionmaker[AsyncSession], announcer: SettlementAnnouncer
) -> int:
    """Announce settled payments to the ledger, each once (at least once; the ledger dedups)."""
    async with sessions() as session, session.begin():
        repository = PaymentRepository(session)
        payments: list[Payment] = list(await repository.claim_unannounced(ANNOUNCE_BATCH))
        announced = 0
        for payment in payments:
            if not await announcer.announce(payment):
                ANNOUNCEMENTS.labels("failed").inc()
                continue
            payment.announced_at = utcnow()
            ANNOUNCEMENTS.labels("announced").inc()
            announced += 1
    return announced
