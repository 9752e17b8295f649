"""The facilitator's rules: reading an x402 request, verifying a payment, the payment records.

:class:`Facilitator` is built once per process in the lifespan (it holds the RPC client and
the fee-payer keys); settlement, which spans several transactions around a broadcast, lives in
:mod:`services.facilitator.settlement`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.facilitator.fee_payers import FeePayers
from services.facilitator.metrics import VERIFICATIONS, VERIFY_LATENCY
from services.facilitator.models import Payment
from services.facilitator.networks import NetworkConfig, cluster_named
from services.facilitator.reasons import PaymentInvalid, Reason
from services.facilitator.repository import PaymentFilter, PaymentRepository, ReplayGuard
from services.facilitator.rpc import RpcError, RpcUnavailable, SolanaRpc
from services.facilitator.schemas import (
    FacilitatorRequest,
    PaymentPayloadV1,
    PaymentPayloadV2,
    PaymentRequirementsV1,
    PaymentRequirementsV2,
    SupportedKind,
    SupportedReply,
    VerifyReply,
)
from services.facilitator.transaction import (
    Limits,
    PaymentTerms,
    PaymentTransaction,
    decode_transaction,
    inspect_payment,
)
from shared.errors import FieldError, NotFound, ServiceUnavailable, UnprocessableContent
from shared.pagination import Cursor, paginate

MAX_MEMO_BYTES = 256
ModelT = TypeVar("ModelT", bound=BaseModel)
# SPL Token's (and Token-2022's) error 1 is InsufficientFunds.
_TOKEN_INSUFFICIENT_FUNDS = {"Custom": 1}
_SIGNATURE_VERIFICATION_FAILURE = -32003


class MalformedRequest(UnprocessableContent):
    slug = "malformed-x402-request"
    title = "Malformed x402 request"


class SolanaUnavailable(ServiceUnavailable):
    slug = "solana-rpc-unavailable"
    title = "Solana RPC unavailable"


class PaymentNotFound(NotFound):
    slug = "payment-not-found"
    title = "Payment not found"


@dataclass(frozen=True)
class PaymentRequest:
    """A ``/verify`` or ``/settle`` body, read and checked against this facilitator."""

    x402_version: int
    terms: PaymentTerms
    transaction: str  # base64, as the client sent it
    network: str  # the requirements' own spelling, echoed in replies
    resource: str | None
    terms_hash: str


@dataclass(frozen=True)
class VerifiedPayment:
    """A payment that passed every rule, signed by its fee payer and simulated."""

    request: PaymentRequest
    payment: PaymentTransaction
    signed_transaction: str  # base64, fee payer's signature in slot 0
    signature: str


def utcnow() -> datetime:
    return datetime.now(UTC)


def memo_hash(memo: str) -> str:
    return hashlib.sha256(memo.encode()).hexdigest()


class Facilitator:
    """Verifies x402 exact-scheme payments on one Solana cluster."""

    def __init__(
        self,
        *,
        network: NetworkConfig,
        rpc: SolanaRpc,
        fee_payers: FeePayers,
        limits: Limits,
        commitment: str,
        replay_guard: ReplayGuard,
    ) -> None:
        self.replay_guard = replay_guard
        self.network = network
        self.rpc = rpc
        self.fee_payers = fee_payers
        self.limits = limits
        self.commitment = commitment

    def supported(self) -> SupportedReply:
        """The kinds this facilitator settles, with the fee payer to use next."""
        fee_payer = self.fee_payers.next_address()
        kinds = [
            SupportedKind(
                x402_version=version,
                scheme="exact",
                network=self.network.spelling(version),
                extra={"feePayer": fee_payer},
            )
            for version in (1, 2)
        ]
        return SupportedReply(
            kinds=kinds, extensions=[], signers={"solana:*": self.fee_payers.addresses}
        )

    def read_request(self, body: FacilitatorRequest) -> PaymentRequest:
        """The request in domain terms; raises :class:`PaymentInvalid` or a 422."""
        version = body.x402_version
        if version == 2:
            payload2 = _parse(PaymentPayloadV2, body.payment_payload, "paymentPayload")
            required2 = _parse(
                PaymentRequirementsV2, body.payment_requirements, "paymentRequirements"
            )
            _same_terms(payload2.accepted, required2)
            return self._request(
                version,
                scheme=payload2.accepted.scheme,
                paid_network=payload2.accepted.network,
                required=required2,
                amount=required2.amount,
                transaction=payload2.payload.transaction,
                resource=payload2.resource.url if payload2.resource else None,
            )
        if version == 1:
            payload1 = _parse(PaymentPayloadV1, body.payment_payload, "paymentPayload")
            required1 = _parse(
                PaymentRequirementsV1, body.payment_requirements, "paymentRequirements"
            )
            return self._request(
                version,
                scheme=payload1.scheme,
                paid_network=payload1.network,
                required=required1,
                amount=required1.max_amount_required,
                transaction=payload1.payload.transaction,
                resource=required1.resource or None,
            )
        raise PaymentInvalid(Reason.INVALID_X402_VERSION, f"x402Version {version} is not 1 or 2")

    def _request(
        self,
        version: int,
        *,
        scheme: str,
        paid_network: str,
        required: PaymentRequirementsV1 | PaymentRequirementsV2,
        amount: str,
        transaction: str,
        resource: str | None,
    ) -> PaymentRequest:
        if scheme != "exact" or required.scheme != "exact":
            raise PaymentInvalid(Reason.INVALID_SCHEME, "only the exact scheme is settled here")
        if cluster_named(required.network) != self.network.cluster:
            raise PaymentInvalid(
                Reason.INVALID_NETWORK,
                f"network {required.network} is not {self.network.spelling(version)}",
            )
        if paid_network != required.network:
            raise PaymentInvalid(
                Reason.NETWORK_MISMATCH, "the payload's network differs from the requirements'"
            )
        if required.asset not in self.network.allowed_mints:
            raise PaymentInvalid(
                Reason.ASSET_NOT_ALLOWED, f"asset {required.asset} is not accepted on this network"
            )
        extra = required.extra or {}
        fee_payer, memo = _fee_payer(extra, self.fee_payers), _memo(extra)
        terms = PaymentTerms(
            x402_version=version,
            cluster=self.network.cluster,
            asset=required.asset,
            amount=int(amount),
            pay_to=required.pay_to,
            max_timeout_seconds=required.max_timeout_seconds,
            fee_payer=fee_payer,
            memo=memo,
        )
        return PaymentRequest(
            x402_version=version,
            terms=terms,
            transaction=transaction,
            network=required.network,
            resource=resource,
            terms_hash=_terms_hash(terms),
        )

    def inspect(self, request: PaymentRequest) -> PaymentTransaction:
        """Every rule that the transaction's bytes alone decide."""
        transaction = decode_transaction(request.transaction)
        return inspect_payment(transaction, request.terms, self.limits, self.fee_payers.address_set)

    async def verify_reply(self, body: FacilitatorRequest) -> VerifyReply:
        """``/verify``: a valid or invalid answer (HTTP 200 either way), counted and timed."""
        start = time.perf_counter()
        try:
            verified = await self.verify(self.read_request(body))
        except PaymentInvalid as invalid:
            VERIFICATIONS.labels("invalid", invalid.reason.value).inc()
            return VerifyReply(
                is_valid=False,
                invalid_reason=invalid.reason,
                invalid_message=invalid.message,
                payer=invalid.payer,
            )
        except Exception:
            VERIFICATIONS.labels("error", "none").inc()
            raise
        finally:
            VERIFY_LATENCY.observe(time.perf_counter() - start)
        VERIFICATIONS.labels("valid", "none").inc()
        return VerifyReply(is_valid=True, payer=verified.payment.payer)

    async def verify(self, request: PaymentRequest) -> VerifiedPayment:
        """Every rule, then the replay check and the signed simulation side by side.

        The database and the chain are asked at once (the latency is the slower of the two,
        not their sum), each on its own short-lived connection, so a verify never holds a
        database connection while it waits for the RPC node.
        """
        payment = self.inspect(request)
        replay = asyncio.ensure_future(self.refuse_replay(request, payment))
        try:
            verified = await self.simulate(request, payment)
        except PaymentInvalid as invalid:
            # A replayed payment also fails simulation (AlreadyProcessed); the replay is the
            # reason a client can act on.
            (outcome,) = await asyncio.gather(replay, return_exceptions=True)
            if isinstance(outcome, PaymentInvalid):
                raise outcome from invalid
            raise
        except BaseException:
            await asyncio.gather(replay, return_exceptions=True)
            raise
        await replay
        return verified

    async def refuse_replay(self, request: PaymentRequest, payment: PaymentTransaction) -> None:
        """A payment already claimed for settlement, or a memo already paid, is not valid."""
        nonce = None
        if payment.memo is not None:
            nonce = (request.terms.cluster.caip2, request.terms.pay_to, memo_hash(payment.memo))
        claimed, memo_used = await self.replay_guard.state(payment.message_hash, nonce, utcnow())
        if claimed:
            raise PaymentInvalid(
                Reason.DUPLICATE_SETTLEMENT, "this payment was already settled", payment.payer
            )
        if memo_used:
            raise PaymentInvalid(
                Reason.MEMO_ALREADY_USED, "this memo already paid payTo", payment.payer
            )

    async def simulate(
        self, request: PaymentRequest, payment: PaymentTransaction
    ) -> VerifiedPayment:
        """Sign as fee payer and simulate with signatures checked against the live chain."""
        signed = self.fee_payers.sign(payment.transaction, request.terms.fee_payer)
        encoded = _b64(bytes(signed))
        try:
            simulation = await self.rpc.simulate(encoded, commitment=self.commitment)
        except RpcError as exc:
            if exc.code == _SIGNATURE_VERIFICATION_FAILURE:
                raise PaymentInvalid(Reason.SIGNATURE_INVALID, exc.message, payment.payer) from exc
            raise PaymentInvalid(Reason.SIMULATION_FAILED, exc.message, payment.payer) from exc
        except RpcUnavailable as exc:
            raise SolanaUnavailable(f"The Solana RPC did not answer: {exc}") from exc
        if simulation.err is not None:
            raise simulation_refusal(simulation.err, payment.payer)
        return VerifiedPayment(
            request=request,
            payment=payment,
            signed_transaction=encoded,
            signature=str(signed.signatures[0]),
        )


def simulation_refusal(err: Any, payer: str) -> PaymentInvalid:
    """The reason a failed simulation (or preflight) gives, in x402's words."""
    text = orjson.dumps(err).decode()
    if err == "BlockhashNotFound":
        return PaymentInvalid(Reason.BLOCKHASH_EXPIRED, "the blockhash has expired", payer)
    if isinstance(err, dict) and "InstructionError" in err:
        _index, detail = err["InstructionError"]
        if detail == _TOKEN_INSUFFICIENT_FUNDS:
            return PaymentInvalid(
                Reason.INSUFFICIENT_FUNDS, "the payer's token balance is too low", payer
            )
    return PaymentInvalid(Reason.SIMULATION_FAILED, f"simulation failed: {text}", payer)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _parse(model: type[ModelT], value: Mapping[str, Any], where: str) -> ModelT:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [
            FieldError(
                field=".".join(["body", where, *(str(part) for part in error["loc"])]),
                message=error["msg"],
                type=error["type"],
            )
            for error in exc.errors()
        ]
        raise MalformedRequest(
            f"{where} is not an x402 v{value.get('x402Version', '?')} document.", errors=errors
        ) from exc


def _same_terms(accepted: PaymentRequirementsV2, required: PaymentRequirementsV2) -> None:
    for name in ("scheme", "network", "asset", "amount", "pay_to"):
        if getattr(accepted, name) != getattr(required, name):
            raise PaymentInvalid(
                Reason.REQUIREMENTS_MISMATCH,
                f"paymentPayload.accepted.{name} differs from paymentRequirements",
            )


def _fee_payer(extra: Mapping[str, Any], fee_payers: FeePayers) -> str:
    fee_payer = extra.get("feePayer")
    if not isinstance(fee_payer, str) or not fee_payer:
        raise PaymentInvalid(Reason.FEE_PAYER_MISSING, "extra.feePayer is required")
    if not fee_payers.manages(fee_payer):
        raise PaymentInvalid(
            Reason.FEE_PAYER_NOT_MANAGED, f"{fee_payer} is not a fee payer of this facilitator"
        )
    return fee_payer


def _memo(extra: Mapping[str, Any]) -> str | None:
    memo = extra.get("memo")
    if memo is None:
        return None
    if not isinstance(memo, str) or not memo or len(memo.encode()) > MAX_MEMO_BYTES:
        raise PaymentInvalid(
            Reason.INVALID_REQUIREMENTS, f"extra.memo must be 1 to {MAX_MEMO_BYTES} bytes of text"
        )
    return memo


def _terms_hash(terms: PaymentTerms) -> str:
    canonical = orjson.dumps(
        [
            terms.cluster.caip2,
            terms.asset,
            str(terms.amount),
            terms.pay_to,
            terms.max_timeout_seconds,
            terms.fee_payer,
            terms.memo,
        ]
    )
    return hashlib.sha256(canonical).hexdigest()


async def list_payments(
    session: AsyncSession, where: PaymentFilter, *, limit: int, cursor: Cursor | None
) -> tuple[list[Payment], str | None]:
    """A page of payments, newest first, and the cursor of the next page."""
    rows = await PaymentRepository(session).page(where, limit=limit + 1, after=cursor)
    return paginate(rows, limit, lambda payment: (payment.created_at, payment.id))


async def get_payment(session: AsyncSession, payment_id: str) -> Payment:
    payment = await PaymentRepository(session).get(payment_id)
    if payment is None:
        raise PaymentNotFound(f"No payment {payment_id}.")
    return payment
