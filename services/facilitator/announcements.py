"""The seam to the ledger: every settled payment is announced once it is final.

The facilitator does not know the ledger's tables; it posts a settled payment to a URL (the
ledger's settlement endpoint through the gateway, with the facilitator's own API key) with the
transaction signature as ``Idempotency-Key``, so a repeated announcement records nothing twice.
"""

from __future__ import annotations

from typing import Protocol

import httpx
import orjson

from services.facilitator.models import Payment
from shared.http_client import HttpClient
from shared.logging import get_logger

log = get_logger(__name__)


class SettlementAnnouncer(Protocol):
    async def announce(self, payment: Payment) -> bool:
        """Tell the ledger; True once it has recorded the payment."""
        ...


def settlement_document(payment: Payment) -> dict[str, object]:
    """The settled payment as the ledger is told of it (amounts as decimal strings)."""
    return {
        "payment_id": payment.id,
        "signature": payment.signature,
        "network": payment.network,
        "asset": payment.asset,
        "amount": payment.amount,
        "payer": payment.payer,
        "pay_to": payment.pay_to,
        "memo": payment.memo,
        "resource": payment.resource,
        "settled_at": payment.settled_at.isoformat() if payment.settled_at else None,
    }


class HttpAnnouncer:
    """Posts settled payments to the ledger's URL."""

    def __init__(self, http: HttpClient, url: str, api_key: str) -> None:
        self._http = http
        self._url = url
        self._api_key = api_key

    async def announce(self, payment: Payment) -> bool:
        try:
            response = await self._http.request(
                "POST",
                self._url,
                target="ledger",
                content=orjson.dumps(settlement_document(payment)),
                headers={"Content-Type": "application/json", "X-API-Key": self._api_key},
                idempotency_key=f"x402-settlement-{payment.signature}",
            )
        except httpx.TransportError as exc:
            log.warning("settlement_announce_failed", payment_id=payment.id, error=str(exc))
            return False
        if response.status_code >= 300:
            log.warning(
                "settlement_announce_refused", payment_id=payment.id, status=response.status_code
            )
            return False
        return True
