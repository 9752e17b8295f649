"""Settlement: claim, broadcast, confirm — and never twice.

A settle spans a broadcast, so it cannot be one request transaction: the claim must be durable
*before* anything reaches the chain, or a crash between broadcast and commit would forget a
payment that landed. Like a background task, each step here is its own short transaction:

1. **Claim.** Insert the payment as ``settling`` with its message hash and its signature (known
   before broadcast: the fee payer's signature is the transaction's id), plus the memo nonce.
   Unique constraints decide between concurrent settles, on every replica, after restarts.
   A Redis ``SET NX`` in front saves the losers a simulation; it never replaces the claim.
2. **Broadcast** the signed bytes (preflight on, so a payment that cannot succeed costs no fee).
3. **Confirm** by polling the signature up to a bound; then ``settled``, ``failed``, or
   ``pending``, which a retry, ``GET /payments/{id}`` or the reconcile task finishes later.

Whoever loses a claim answers from the winner's row: the same request gets the stored result
(waiting for confirmation like the winner), a different request ``duplicate_settlement``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import timedelta

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.facilitator.confirmations import ConfirmationWatcher
from services.facilitator.metrics import DUPLICATE_REJECTIONS, SETTLE_LATENCY, SETTLEMENTS
from services.facilitator.models import UNFINISHED_STATUSES, MemoNonce, Payment, PaymentStatus
from services.facilitator.reasons import PaymentInvalid, Reason
from services.facilitator.repository import PaymentRepository
from services.facilitator.rpc import RpcError, RpcUnavailable, SignatureStatus
from services.facilitator.schemas import FacilitatorRequest, SettleReply
from services.facilitator.service import (
    Facilitator,
    PaymentRequest,
    VerifiedPayment,
    get_payment,
    memo_hash,
    simulation_refusal,
    utcnow,
)
from shared.ids import new_id_str
from shared.logging import get_logger

log = get_logger(__name__)

_CLAIM_KEY = "kassa:facilitator:settle:{}"
_CLAIM_WAIT_S = 5.0
_ALREADY_PROCESSED = "AlreadyProcessed"
_CONFIRMED = {"confirmed": ("confirmed", "finalized"), "finalized": ("finalized",)}


@dataclass(frozen=True)
class SettlementPolicy:
    """How long and how often to wait for confirmation, and how long a memo stays used."""

    commitment: str
    confirm_timeout_s: float
    memo_nonce_ttl: timedelta
    claim_ttl_s: int


class Settlement:
    """Settles verified payments; one per process, built in the lifespan."""

    def __init__(
        self,
        facilitator: Facilitator,
        sessions: async_sessionmaker[AsyncSession],
        policy: SettlementPolicy,
        watcher: ConfirmationWatcher,
        redis: Redis | None = None,
    ) -> None:
        self.watcher = watcher
        self.facilitator = facilitator
        self.sessions = sessions
        self.policy = policy
        self.redis = redis

    async def settle(self, body: FacilitatorRequest) -> SettleReply:
        """Settle one payment (see the module doc); every outcome is an x402 SettleResponse."""
        start = time.perf_counter()
        try:
            try:
                request = self.facilitator.read_request(body)
            except PaymentInvalid as invalid:
                network = str(body.payment_requirements.get("network", ""))
                return _failure(network, invalid)
            return await self._settle(request)
        finally:
            SETTLE_LATENCY.observe(time.perf_counter() - start)

    async def payment(self, payment_id: str) -> Payment:
        """A payment record; an unfinished one is first checked on chain (one status call)."""
        async with self.sessions() as session:
            payment = await get_payment(session, payment_id)
        if payment.status in UNFINISHED_STATUSES and await self.reconcile([payment]):
            async with self.sessions() as session:
                payment = await get_payment(session, payment_id)
        return payment

    async def _settle(self, request: PaymentRequest) -> SettleReply:
        try:
            payment = self.facilitator.inspect(request)
        except PaymentInvalid as invalid:
            return _failure(request.network, invalid)
        existing = await self._stored(payment.message_hash)
        if existing is not None:
            DUPLICATE_REJECTIONS.labels("database").inc()
            return await self._answer_stored(existing, request)
        if not await self._fast_claim(payment.message_hash):
            DUPLICATE_REJECTIONS.labels("redis").inc()
            existing = await self._wait_for_claim(payment.message_hash)
            if existing is not None:
                return await self._answer_stored(existing, request)
        try:
            # No replay check here: the claim's unique keys are the check, race-free.
            verified = await self.facilitator.simulate(request, payment)
            await self._require_fee_payer_funds(request, verified)
        except PaymentInvalid as invalid:
            # A concurrent settle of this very payment may have landed while we simulated
            # (the chain then says AlreadyProcessed): its row, not our failure, is the answer.
            existing = await self._stored(payment.message_hash)
            if existing is not None:
                DUPLICATE_REJECTIONS.labels("database").inc()
                return await self._answer_stored(existing, request)
            await self._release_fast_claim(payment.message_hash)
            return _failure(request.network, invalid)
        except BaseException:
            await self._release_fast_claim(payment.message_hash)
            raise
        claimed = await self._claim(verified)
        if isinstance(claimed, SettleReply):
            return claimed
        return await self._broadcast(claimed, request)

    async def _stored(self, message_hash: str) -> Payment | None:
        async with self.sessions() as session:
            return await PaymentRepository(session).by_message_hash(message_hash)

    async def _fast_claim(self, message_hash: str) -> bool:
        """Redis SET NX in front of the database; a Redis failure falls through to the DB."""
        if self.redis is None:
            return True
        try:
            claimed = await self.redis.set(
                _CLAIM_KEY.format(message_hash), "1", nx=True, ex=self.policy.claim_ttl_s
            )
        except (RedisError, OSError) as exc:
            log.warning("settle_fast_claim_unavailable", error=str(exc))
            return True
        return bool(claimed)

    async def _release_fast_claim(self, message_hash: str) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.delete(_CLAIM_KEY.format(message_hash))
        except (RedisError, OSError) as exc:
            log.warning("settle_fast_claim_release_failed", error=str(exc))

    async def _wait_for_claim(self, message_hash: str) -> Payment | None:
        """Another settle of this payment is verifying: wait for its row, briefly."""
        deadline = time.monotonic() + _CLAIM_WAIT_S
        while time.monotonic() < deadline:
            existing = await self._stored(message_hash)
            if existing is not None:
                return existing
            await asyncio.sleep(0.05)
        return None

    async def _require_fee_payer_funds(
        self, request: PaymentRequest, verified: VerifiedPayment
    ) -> None:
        fee_payers = self.facilitator.fee_payers
        address = request.terms.fee_payer
        if fee_payers.balance(address) is None:
            try:
                fee_payers.record_balance(address, await self.facilitator.rpc.balance(address))
            except (RpcError, RpcUnavailable) as exc:
                log.warning("fee_payer_balance_unread", fee_payer=address, error=str(exc))
                return
        if fee_payers.below_floor(address):
            raise PaymentInvalid(
                Reason.FEE_PAYER_BALANCE_LOW,
                f"fee payer {address} holds {fee_payers.balance(address)} lamports, below the "
                f"floor of {fee_payers.floor_lamports}; settle refused",
                verified.payment.payer,
            )

    async def _claim(self, verified: VerifiedPayment) -> Payment | SettleReply:
        """Step 1: the durable claim; a lost race answers from the winner's row."""
        request, payment = verified.request, verified.payment
        now = utcnow()
        row = Payment(
            id=new_id_str(),
            message_hash=payment.message_hash,
            signature=verified.signature,
            status=PaymentStatus.SETTLING,
            x402_version=request.x402_version,
            network=request.terms.cluster.caip2,
            asset=request.terms.asset,
            amount=str(request.terms.amount),
            pay_to=request.terms.pay_to,
            payer=payment.payer,
            fee_payer=request.terms.fee_payer,
            memo=payment.memo,
            resource=request.resource,
            terms_hash=request.terms_hash,
            signed_transaction=verified.signed_transaction,
            blockhash=str(payment.transaction.message.recent_blockhash),
            created_at=now,
            updated_at=now,
            deadline_at=now + timedelta(seconds=request.terms.max_timeout_seconds),
        )
        nonce = None
        if payment.memo is not None:
            nonce = MemoNonce(
                network=row.network,
                pay_to=row.pay_to,
                memo_hash=memo_hash(payment.memo),
                payment_id=row.id,
                expires_at=now + self.policy.memo_nonce_ttl,
            )
        try:
            async with self.sessions() as session, session.begin():
                repository = PaymentRepository(session)
                if nonce is not None:
                    await repository.delete_expired_nonce(
                        nonce.network, nonce.pay_to, nonce.memo_hash, now
                    )
                repository.add(row, nonce)
        except IntegrityError:
            return await self._lost_claim(verified)
        log.info("settlement_claimed", payment_id=row.id, signature=row.signature)
        return row

    async def _lost_claim(self, verified: VerifiedPayment) -> SettleReply:
        DUPLICATE_REJECTIONS.labels("database").inc()
        existing = await self._stored(verified.payment.message_hash)
        if existing is not None:
            return await self._answer_stored(existing, verified.request)
        # The message is new, so the unique key that refused it is the memo's.
        return _failure(
            verified.request.network,
            PaymentInvalid(
                Reason.MEMO_ALREADY_USED, "this memo already paid payTo", verified.payment.payer
            ),
        )

    async def _broadcast(self, payment: Payment, request: PaymentRequest) -> SettleReply:
        """Step 2, then step 3."""
        rpc = self.facilitator.rpc
        try:
            await rpc.send(payment.signed_transaction, commitment=self.policy.commitment)
        except RpcError as exc:
            if _ALREADY_PROCESSED not in exc.message:
                refusal = _send_refusal(exc, payment.payer)
                await self._finish(payment, PaymentStatus.FAILED, refusal)
                return await self._reply_for(payment.id, request, replayed=False)
        except RpcUnavailable as exc:
            # Maybe sent, maybe not: the signature will tell; the reconcile may resend.
            log.warning("settlement_broadcast_uncertain", payment_id=payment.id, error=str(exc))
        return await self._confirm(payment, request, replayed=False)

    async def _confirm(
        self, payment: Payment, request: PaymentRequest, *, replayed: bool
    ) -> SettleReply:
        """Step 3: poll the signature until confirmed, failed, or the bound runs out."""
        timeout = min(self.policy.confirm_timeout_s, float(request.terms.max_timeout_seconds))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await self._mark_pending(payment)
                break
            try:
                status = await asyncio.wait_for(self.watcher.status(payment.signature), remaining)
            except TimeoutError:
                continue
            if status is not None and await self.apply_status(payment, status):
                break
        return await self._reply_for(payment.id, request, replayed=replayed)

    async def apply_status(self, payment: Payment, status: SignatureStatus) -> bool:
        """Record what the chain says; True once the payment is final."""
        if status.err is not None:
            message = f"the transaction failed on chain: {orjson.dumps(status.err).decode()}"
            await self._finish(
                payment, PaymentStatus.FAILED, PaymentInvalid(Reason.TRANSACTION_FAILED, message)
            )
            return True
        if status.confirmation_status in _CONFIRMED[self.policy.commitment]:
            await self._finish(payment, PaymentStatus.SETTLED, slot=status.slot)
            return True
        return False

    async def _finish(
        self,
        payment: Payment,
        status: PaymentStatus,
        refusal: PaymentInvalid | None = None,
        slot: int | None = None,
    ) -> None:
        now = utcnow()
        values: dict[str, object] = {"updated_at": now}
        if status is PaymentStatus.SETTLED:
            values.update(settled_at=now, slot=slot)
        if refusal is not None:
            values.update(error_reason=refusal.reason.value, error_message=refusal.message)
        async with self.sessions() as session, session.begin():
            changed = await PaymentRepository(session).finish(payment.id, status, **values)
        if changed:
            log.info(
                "settlement_" + status.value, payment_id=payment.id, signature=payment.signature
            )

    async def _mark_pending(self, payment: Payment) -> None:
        async with self.sessions() as session, session.begin():
            await PaymentRepository(session).finish(
                payment.id, PaymentStatus.PENDING, updated_at=utcnow()
            )

    async def _answer_stored(self, payment: Payment, request: PaymentRequest) -> SettleReply:
        """Another settle claimed this payment: its result, never a second broadcast."""
        if payment.terms_hash != request.terms_hash:
            return _failure(
                request.network,
                PaymentInvalid(
                    Reason.DUPLICATE_SETTLEMENT,
                    "this transaction was already settled for other payment requirements",
                    payment.payer,
                ),
            )
        if payment.status in UNFINISHED_STATUSES:
            return await self._confirm(payment, request, replayed=True)
        return await self._reply_for(payment.id, request, replayed=True)

    async def _reply_for(
        self, payment_id: str, request: PaymentRequest, *, replayed: bool
    ) -> SettleReply:
        async with self.sessions() as session:
            payment = await PaymentRepository(session).get(payment_id)
        assert payment is not None  # rows are never deleted
        reply = stored_reply(payment, request.network, replayed=replayed)
        reason = reply.error_reason or "none"
        result = "replayed" if replayed and reply.success else _result_of(payment.status)
        SETTLEMENTS.labels(result, reason).inc()
        return reply

    async def reconcile(self, payments: list[Payment]) -> int:
        """Check unfinished payments on chain in one batched call; how many became final."""
        if not payments:
            return 0
        try:
            statuses = await self.facilitator.rpc.signature_statuses(
                [payment.signature for payment in payments]
            )
        except (RpcError, RpcUnavailable) as exc:
            log.warning("reconcile_status_unavailable", error=str(exc))
            return 0
        finished = 0
        for payment, status in zip(payments, statuses, strict=True):
            final = (
                await self.apply_status(payment, status)
                if status is not None
                else await self._expired(payment)
            )
            finished += int(final)
        return finished

    async def _expired(self, payment: Payment) -> bool:
        """A transaction unseen after its blockhash expired can never land: it failed."""
        try:
            valid = await self.facilitator.rpc.is_blockhash_valid(
                payment.blockhash, commitment=self.policy.commitment
            )
        except (RpcError, RpcUnavailable):
            return False
        if valid:
            # Resending the same bytes is safe: one signature lands at most once.
            with contextlib.suppress(RpcError, RpcUnavailable):
                await self.facilitator.rpc.send(
                    payment.signed_transaction, commitment=self.policy.commitment
                )
            return False
        await self._finish(
            payment,
            PaymentStatus.FAILED,
            PaymentInvalid(Reason.TRANSACTION_FAILED, "the blockhash expired before it landed"),
        )
        return True


def stored_reply(payment: Payment, network: str, *, replayed: bool) -> SettleReply:
    """The x402 SettleResponse a payment record stands for."""
    extra = {"paymentId": payment.id, "status": payment.status, "replayed": replayed}
    if payment.status == PaymentStatus.SETTLED:
        return SettleReply(
            success=True,
            payer=payment.payer,
            transaction=payment.signature,
            network=network,
            amount=payment.amount,
            extra=extra,
        )
    if payment.status in UNFINISHED_STATUSES:
        return SettleReply(
            success=False,
            error_reason=Reason.SETTLEMENT_PENDING,
            error_message="broadcast; not confirmed yet: retry the settle or GET the payment",
            payer=payment.payer,
            transaction=payment.signature,
            network=network,
            amount=payment.amount,
            extra=extra,
        )
    return SettleReply(
        success=False,
        error_reason=payment.error_reason or Reason.TRANSACTION_FAILED,
        error_message=payment.error_message,
        payer=payment.payer,
        transaction="",
        network=network,
        extra=extra,
    )


def _failure(network: str, invalid: PaymentInvalid) -> SettleReply:
    SETTLEMENTS.labels("failed", invalid.reason.value).inc()
    return SettleReply(
        success=False,
        error_reason=invalid.reason,
        error_message=invalid.message,
        payer=invalid.payer,
        transaction="",
        network=network,
    )


def _send_refusal(exc: RpcError, payer: str) -> PaymentInvalid:
    data = exc.data if isinstance(exc.data, dict) else {}
    if data.get("err") is not None:
        return simulation_refusal(data["err"], payer)
    return PaymentInvalid(Reason.TRANSACTION_FAILED, f"the node refused it: {exc.message}", payer)


def _result_of(status: str) -> str:
    return {"settled": "settled", "failed": "failed"}.get(status, "pending")
