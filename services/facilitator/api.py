"""The facilitator's HTTP surface: the x402 facilitator API and the payment records."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from services.facilitator.auth import Reader, Settler, Verifier
from services.facilitator.models import PaymentStatus
from services.facilitator.repository import PaymentFilter
from services.facilitator.schemas import (
    BASE58_ADDRESS,
    FacilitatorRequest,
    PaymentRead,
    SettleReply,
    SupportedReply,
    VerifyReply,
)
from services.facilitator.service import (
    Facilitator,
    MalformedRequest,
    PaymentNotFound,
    SolanaUnavailable,
    list_payments,
)
from services.facilitator.settlement import Settlement
from shared.errors import problem_responses
from shared.pagination import CursorQuery, LimitQuery, Page, optional_cursor
from shared.routing import kassa_router
from shared.runtime import SessionDep


async def get_facilitator(request: Request) -> Facilitator:
    facilitator: Facilitator = request.app.state.facilitator
    return facilitator


async def get_settlement(request: Request) -> Settlement:
    settlement: Settlement = request.app.state.settlement
    return settlement


FacilitatorDep = Annotated[Facilitator, Depends(get_facilitator)]
SettlementDep = Annotated[Settlement, Depends(get_settlement)]

router = kassa_router(tags=["x402"])
payments_router = kassa_router(prefix="/payments", tags=["payments"])


@router.post(
    "/verify",
    response_model=VerifyReply,
    summary="Verify an x402 payment (HTTP 200 with isValid either way)",
    responses=problem_responses(MalformedRequest, SolanaUnavailable),
    response_model_by_alias=True,
    response_model_exclude_none=True,
)
async def verify(
    body: FacilitatorRequest, facilitator: FacilitatorDep, _caller: Verifier
) -> VerifyReply:
    return await facilitator.verify_reply(body)


@router.post(
    "/settle",
    response_model=SettleReply,
    summary="Settle an x402 payment: at most one broadcast per payment, ever",
    responses=problem_responses(MalformedRequest),
    response_model_by_alias=True,
    response_model_exclude_none=True,
)
async def settle(
    body: FacilitatorRequest, settlement: SettlementDep, _caller: Settler
) -> SettleReply:
    return await settlement.settle(body)


@router.get(
    "/supported",
    response_model=SupportedReply,
    summary="The payment kinds this facilitator settles, and its fee payers",
    response_model_by_alias=True,
    response_model_exclude_none=True,
)
async def supported(facilitator: FacilitatorDep, _caller: Reader) -> SupportedReply:
    return facilitator.supported()


Address = Annotated[str | None, Query(pattern=BASE58_ADDRESS)]


@payments_router.get("", response_model=Page[PaymentRead], summary="Payments, newest first")
async def payments(
    session: SessionDep,
    _caller: Reader,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    payer: Address = None,
    pay_to: Address = None,
    status: PaymentStatus | None = None,
    created_from: Annotated[datetime | None, Query(description="Inclusive, ISO 8601.")] = None,
    created_before: Annotated[datetime | None, Query(description="Exclusive, ISO 8601.")] = None,
) -> Page[PaymentRead]:
    where = PaymentFilter(payer, pay_to, status, created_from, created_before)
    rows, next_cursor = await list_payments(
        session, where, limit=limit, cursor=optional_cursor(cursor)
    )
    return Page[PaymentRead](
        items=[PaymentRead.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@payments_router.get(
    "/{payment_id}",
    response_model=PaymentRead,
    summary="One payment; an unfinished one is checked on chain first",
    responses=problem_responses(PaymentNotFound),
)
async def payment(payment_id: str, settlement: SettlementDep, _caller: Reader) -> PaymentRead:
    return PaymentRead.model_validate(await settlement.payment(payment_id))
