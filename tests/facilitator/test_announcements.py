"""The seam to the ledger: each settled payment is announced, retried until accepted, with
its signature as the idempotency key, and marked announced once."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.facilitator.app import create_app
from shared.identity import AssertionSigner
from tests.conftest import assertion_header, running
from tests.facilitator.conftest import Wallets
from tests.facilitator.support import facilitator_settings
from tests.facilitator.test_settle import payment_body
from tests.servers import free_port, served
from tests.solana_sandbox import Sandbox


def ledger_stand_in(received: list[dict[str, Any]], refuse_first: int) -> Starlette:
    """A receiver that refuses the first ``refuse_first`` posts with 503, then records them."""
    attempts: list[int] = []

    async def settlements(request: Request) -> JSONResponse:
        attempts.append(1)
        if len(attempts) <= refuse_first:
            return JSONResponse({"title": "busy"}, status_code=503)
        received.append(
            {
                "key": request.headers.get("idempotency-key"),
                "api_key": request.headers.get("x-api-key"),
                "body": await request.json(),
            }
        )
        return JSONResponse({"recorded": True}, status_code=201)

    return Starlette(routes=[Route("/settlements", settlements, methods=["POST"])])


async def test_a_settled_payment_is_announced_once_after_refusals(
    facilitator_database: str,
    chain: Sandbox,
    wallets: Wallets,
    signing_key_pair: tuple[str, str],
    signer: AssertionSigner,
) -> None:
    received: list[dict[str, Any]] = []
    with served(ledger_stand_in(received, refuse_first=2), free_port()) as ledger:
        settings = facilitator_settings(
            facilitator_database,
            chain,
            [wallets.fee_payer],
            signing_key_pair[1],
            ledger_url=f"{ledger}/settlements",
            ledger_api_key="kas_test_facilitator_key",
            announce_interval_s=0.05,
        )
        async with running(create_app(settings)) as client:
            client.headers.update(
                assertion_header(signer, "facilitator", scopes=frozenset({"facilitator"}))
            )
            settled = (await client.post("/settle", json=payment_body(chain, wallets))).json()
            payment_id = settled["extra"]["paymentId"]
            for _ in range(200):
                record = (await client.get(f"/payments/{payment_id}")).json()
                if record["announced_at"]:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # further rounds must not announce it again
    assert record["announced_at"], "the payment was never announced"
    assert len(received) == 1
    (announcement,) = received
    assert announcement["key"] == f"x402-settlement-{settled['transaction']}"
    assert announcement["api_key"] == "kas_test_facilitator_key"
    assert announcement["body"]["signature"] == settled["transaction"]
    assert announcement["body"]["amount"] == "1000000"
    assert announcement["body"]["payment_id"] == payment_id
