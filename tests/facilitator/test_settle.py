"""Settlement happens once: retries, races, restarts and other terms never pay twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY
from solders.keypair import Keypair

from services.facilitator.app import create_app
from services.facilitator.models import MemoNonce
from services.facilitator.reasons import Reason
from services.facilitator.service import utcnow
from services.facilitator.tasks import remove_expired_nonces
from shared.db import Database
from shared.identity import AssertionSigner
from tests.conftest import assertion_header, running
from tests.facilitator.conftest import Facilitator, Wallets
from tests.facilitator.support import (
    PRICE,
    PaymentShape,
    body,
    build_payment,
    facilitator_settings,
    requirements,
)
from tests.solana_sandbox import SOL, TOKEN_PROGRAM, USDC, Sandbox, serve_sandbox, token_amount


def broadcasts() -> float:
    """sendTransaction calls this process made to the chain, ever."""
    samples = (
        REGISTRY.get_sample_value(
            "kassa_facilitator_rpc_calls_total", {"method": "sendTransaction", "outcome": outcome}
        )
        or 0.0
        for outcome in ("ok", "rpc_error", "http_error", "transport_error")
    )
    return sum(samples)


def payment_body(chain: Sandbox, wallets: Wallets, **extra: Any) -> dict[str, Any]:
    merchant, fee_payer = wallets.merchant.pubkey(), wallets.fee_payer.pubkey()
    shape = PaymentShape(memo=extra["memo"].encode()) if "memo" in extra else PaymentShape()
    transaction = build_payment(chain, wallets.payer, merchant, fee_payer, shape)
    return body(transaction, requirements(merchant, fee_payer, **extra))


def merchant_balance(chain: Sandbox, wallets: Wallets) -> int:
    return token_amount(chain, wallets.merchant.pubkey(), USDC, TOKEN_PROGRAM)


class TestExactlyOnce:
    async def test_a_retry_answers_the_stored_result_without_a_second_broadcast(
        self, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        payment = payment_body(chain, wallets)
        first = await facilitator.settle(payment)
        assert first["success"] is True, first
        assert first["extra"]["replayed"] is False
        sent = broadcasts()
        again = await facilitator.settle(payment)
        assert again["success"] is True
        assert again["transaction"] == first["transaction"]
        assert again["extra"] == {**first["extra"], "replayed": True}
        assert broadcasts() == sent
        assert merchant_balance(chain, wallets) == PRICE

    async def test_verify_after_settle_is_a_duplicate(
        self, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        payment = payment_body(chain, wallets)
        assert (await facilitator.settle(payment))["success"] is True
        verified = await facilitator.verify(payment)
        assert verified["invalidReason"] == Reason.DUPLICATE_SETTLEMENT

    async def test_the_same_transaction_for_other_terms_is_duplicate_settlement(
        self, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        payment = payment_body(chain, wallets)
        assert (await facilitator.settle(payment))["success"] is True
        payment["paymentRequirements"]["maxTimeoutSeconds"] = 30
        payment["paymentPayload"]["accepted"]["maxTimeoutSeconds"] = 30
        other = await facilitator.settle(payment)
        assert other["success"] is False
        assert other["errorReason"] == Reason.DUPLICATE_SETTLEMENT
        assert merchant_balance(chain, wallets) == PRICE

    async def test_fifty_concurrent_settles_broadcast_once(
        self, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        payment = payment_body(chain, wallets)
        sent = broadcasts()
        replies = await asyncio.gather(*(facilitator.settle(payment) for _ in range(50)))
        assert broadcasts() - sent == 1
        assert {reply["transaction"] for reply in replies} == {replies[0]["transaction"]}
        assert all(reply["success"] for reply in replies), replies
        assert sum(not reply["extra"]["replayed"] for reply in replies) == 1
        assert merchant_balance(chain, wallets) == PRICE
        records = (await facilitator.client.get("/payments")).json()["items"]
        assert len(records) == 1

    async def test_a_replay_after_a_restart_is_not_broadcast(
        self,
        facilitator: Facilitator,
        wallets: Wallets,
        chain: Sandbox,
        signer: AssertionSigner,
    ) -> None:
        payment = payment_body(chain, wallets)
        assert (await facilitator.settle(payment))["success"] is True
        sent = broadcasts()
        async with running(create_app(facilitator.settings)) as restarted:
            restarted.headers.update(
                assertion_header(signer, "facilitator", scopes=frozenset({"facilitator"}))
            )
            reply = (await restarted.post("/settle", json=payment)).json()
        assert reply["extra"]["replayed"] is True
        assert broadcasts() == sent
        assert merchant_balance(chain, wallets) == PRICE


class TestMemoNonces:
    async def test_a_seller_memo_pays_once(
        self, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        first = await facilitator.settle(payment_body(chain, wallets, memo="order-7"))
        assert first["success"] is True, first
        second = await facilitator.settle(payment_body(chain, wallets, memo="order-7"))
        assert second["errorReason"] == Reason.MEMO_ALREADY_USED
        assert merchant_balance(chain, wallets) == PRICE

    async def test_expired_nonces_are_removed_and_live_ones_kept(
        self, facilitator: Facilitator
    ) -> None:
        database = Database(facilitator.settings.database_url)
        now = utcnow()
        async with database.session() as session, session.begin():
            for name, offset in (("old", -1), ("live", 1)):
                session.add(
                    MemoNonce(
                        network="n",
                        pay_to="p",
                        memo_hash=name,
                        payment_id=name,
                        expires_at=now + timedelta(seconds=offset),
                    )
                )
        assert await remove_expired_nonces(database.sessionmaker) == 1
        async with database.session() as session:
            left = [nonce.memo_hash for nonce in (await session.scalars(_all_nonces())).all()]
        await database.dispose()
        assert left == ["live"]


def _all_nonces() -> Any:
    from sqlalchemy import select

    return select(MemoNonce)


class TestFeePayerFloor:
    async def test_a_fee_payer_below_the_floor_refuses_to_settle(
        self,
        facilitator_database: str,
        chain: Sandbox,
        wallets: Wallets,
        signing_key_pair: tuple[str, str],
        signer: AssertionSigner,
    ) -> None:
        poor = Keypair()
        chain.fund(poor.pubkey(), lamports=SOL // 1000)
        settings = facilitator_settings(
            facilitator_database,
            chain,
            [poor],
            signing_key_pair[1],
            fee_payer_min_lamports=SOL // 100,
        )
        poor_wallets = Wallets(wallets.payer, wallets.merchant, poor)
        async with running(create_app(settings)) as client:
            client.headers.update(
                assertion_header(signer, "facilitator", scopes=frozenset({"facilitator"}))
            )
            reply = (await client.post("/settle", json=payment_body(chain, poor_wallets))).json()
            ready = (await client.get("/ready")).json()
        assert reply["errorReason"] == Reason.FEE_PAYER_BALANCE_LOW
        assert ready["fee_payers"][str(poor.pubkey())]["below_floor"] is True
        assert merchant_balance(chain, wallets) == 0


class TestPendingConfirmation:
    async def test_an_unconfirmed_settle_answers_pending_and_is_reconciled_later(
        self,
        facilitator_database: str,
        wallets: Wallets,
        signing_key_pair: tuple[str, str],
        signer: AssertionSigner,
    ) -> None:
        for frozen in serve_sandbox(slot_ms=0):
            for mint_holder in (wallets.payer, wallets.merchant):
                frozen.fund(mint_holder.pubkey(), mint=USDC, amount=10_000_000)
            frozen.fund(wallets.fee_payer.pubkey(), lamports=SOL)
            settings = facilitator_settings(
                facilitator_database,
                frozen,
                [wallets.fee_payer],
                signing_key_pair[1],
                confirm_timeout_s=0.3,
            )
            payment = payment_body(frozen, wallets)
            async with running(create_app(settings)) as client:
                client.headers.update(
                    assertion_header(signer, "facilitator", scopes=frozenset({"facilitator"}))
                )
                pending = (await client.post("/settle", json=payment)).json()
                assert pending["success"] is False
                assert pending["errorReason"] == Reason.SETTLEMENT_PENDING
                assert pending["transaction"], "a pending settle names its signature"
                payment_id = pending["extra"]["paymentId"]
                frozen.advance(1)
                record = (await client.get(f"/payments/{payment_id}")).json()
                assert record["status"] == "settled"
                assert record["signature"] == pending["transaction"]
                retried = (await client.post("/settle", json=payment)).json()
                assert retried["success"] is True
                assert retried["transaction"] == pending["transaction"]
