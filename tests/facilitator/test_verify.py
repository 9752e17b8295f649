"""Every rule of the exact scheme, each broken on its own: the right reason, nothing on chain.

Payments are built with solders so that each differs from a valid one in exactly one way;
each is sent to ``/verify`` and to ``/settle``, and afterwards the merchant's balance and the
payment records show that nothing was broadcast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from spl.token.instructions import get_associated_token_address
from x402.mechanisms.svm.exact import ExactSvmClientScheme
from x402.mechanisms.svm.signers import KeypairSigner
from x402.schemas import PaymentRequirements

from sandboxes.solana_rpc import SANDBOX_USDC_2022_MINT
from services.facilitator.reasons import Reason
from tests.facilitator.conftest import Facilitator, Wallets
from tests.facilitator.support import (
    MEMO_PROGRAM,
    PRICE,
    PaymentShape,
    body,
    build_payment,
    requirements,
)
from tests.solana_sandbox import (
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    USDC,
    USDC_2022,
    Sandbox,
    token_amount,
)

MAINNET = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"


@dataclass(frozen=True)
class Violation:
    """One broken rule: how the payment (or its requirements) differs, and the reason."""

    reason: Reason
    shape: Callable[[Wallets], dict[str, Any]] = lambda _w: {}
    terms: Callable[[Wallets], dict[str, Any]] = lambda _w: {}
    extra: dict[str, Any] = field(default_factory=dict)
    transaction: str | None = None  # replaces the built transaction


def _memo_with_fee_payer(w: Wallets) -> dict[str, Any]:
    touch = AccountMeta(w.fee_payer.pubkey(), is_signer=False, is_writable=False)
    return {"memo": None, "extra_instructions": [Instruction(MEMO_PROGRAM, b"hi", [touch])]}


def _system_transfer(w: Wallets) -> dict[str, Any]:
    params = TransferParams(from_pubkey=w.payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=1)
    return {"extra_instructions": [transfer(params)]}


VIOLATIONS = {
    "wrong mint": Violation(
        Reason.MINT_MISMATCH, shape=lambda _w: {"mint": USDC_2022, "program": TOKEN_2022_PROGRAM}
    ),
    "wrong destination": Violation(
        Reason.RECIPIENT_MISMATCH,
        shape=lambda w: {
            "destination": get_associated_token_address(w.payer.pubkey(), USDC, TOKEN_PROGRAM)
        },
    ),
    "underpayment": Violation(Reason.AMOUNT_INSUFFICIENT, shape=lambda _w: {"amount": PRICE - 1}),
    "overpayment": Violation(Reason.AMOUNT_EXCEEDS, shape=lambda _w: {"amount": PRICE + 1}),
    "fee payer in an instruction's accounts": Violation(
        Reason.FEE_PAYER_IN_INSTRUCTION, shape=_memo_with_fee_payer
    ),
    "fee payer as authority": Violation(
        Reason.FEE_PAYER_TRANSFERRING,
        shape=lambda w: {"authority": w.fee_payer.pubkey(), "signer": w.fee_payer},
    ),
    "fee payer as source": Violation(
        Reason.FEE_PAYER_TRANSFERRING, shape=lambda w: {"source": w.fee_payer.pubkey()}
    ),
    "compute price over the cap": Violation(
        Reason.COMPUTE_PRICE_TOO_HIGH, shape=lambda _w: {"micro_lamports": 5_000_001}
    ),
    "compute limit over the cap": Violation(
        Reason.COMPUTE_LIMIT_TOO_HIGH, shape=lambda _w: {"compute_units": 1_400_000}
    ),
    "no compute budget": Violation(
        Reason.INSTRUCTION_COUNT, shape=lambda _w: {"compute_budget": False}
    ),
    "an extra unknown instruction": Violation(
        Reason.UNKNOWN_FIFTH_INSTRUCTION, shape=_system_transfer
    ),
    "memo differs from extra.memo": Violation(
        Reason.MEMO_MISMATCH, shape=lambda _w: {"memo": b"order-2"}, extra={"memo": "order-1"}
    ),
    "memo missing when extra.memo is set": Violation(
        Reason.MEMO_COUNT, shape=lambda _w: {"memo": None}, extra={"memo": "order-1"}
    ),
    "two memos": Violation(
        Reason.MEMO_COUNT,
        shape=lambda _w: {"extra_instructions": [Instruction(MEMO_PROGRAM, b"second", [])]},
    ),
    "unknown blockhash": Violation(
        Reason.BLOCKHASH_EXPIRED, shape=lambda _w: {"blockhash": Hash.new_unique()}
    ),
    "unsigned": Violation(Reason.SIGNATURE_MISSING, shape=lambda _w: {"sign": False}),
    "wrongly signed": Violation(Reason.SIGNATURE_INVALID, shape=lambda _w: {"signer": Keypair()}),
    "more than the payer holds": Violation(
        Reason.INSUFFICIENT_FUNDS,
        shape=lambda _w: {"amount": 20_000_000},
        terms=lambda _w: {"amount": "20000000"},
    ),
    "garbage base64": Violation(Reason.DECODE_FAILED, transaction="not//base64!!"),
    "bytes that are no transaction": Violation(Reason.DECODE_FAILED, transaction="AAAA"),
    "asset not on the allow-list": Violation(
        Reason.ASSET_NOT_ALLOWED, terms=lambda _w: {"asset": str(Pubkey.new_unique())}
    ),
    "another network": Violation(Reason.INVALID_NETWORK, terms=lambda _w: {"network": MAINNET}),
    "a fee payer we do not manage": Violation(
        Reason.FEE_PAYER_NOT_MANAGED,
        terms=lambda _w: {"extra": {"feePayer": str(Pubkey.new_unique())}},
    ),
    "another scheme": Violation(Reason.INVALID_SCHEME, terms=lambda _w: {"scheme": "upto"}),
}


def _violating_body(chain: Sandbox, w: Wallets, violation: Violation) -> dict[str, Any]:
    required = requirements(w.merchant.pubkey(), w.fee_payer.pubkey(), **violation.extra)
    required.update(violation.terms(w))
    shape = PaymentShape(**violation.shape(w))
    transaction = violation.transaction or build_payment(
        chain, w.payer, w.merchant.pubkey(), w.fee_payer.pubkey(), shape
    )
    return body(transaction, required)


class TestEachRuleOnItsOwn:
    @pytest.mark.parametrize("case", list(VIOLATIONS), ids=list(VIOLATIONS))
    async def test_the_violation_is_refused_with_its_reason_and_nothing_is_sent(
        self, case: str, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        violating = _violating_body(chain, wallets, VIOLATIONS[case])
        verified = await facilitator.verify(violating)
        assert verified["isValid"] is False
        assert verified["invalidReason"] == VIOLATIONS[case].reason, verified
        settled = await facilitator.settle(violating)
        assert settled["success"] is False
        assert settled["errorReason"] == VIOLATIONS[case].reason, settled
        assert settled["transaction"] == ""
        merchant = wallets.merchant.pubkey()
        assert token_amount(chain, merchant, USDC, TOKEN_PROGRAM) == 0
        records = (await facilitator.client.get("/payments")).json()
        assert records["items"] == []

    async def test_the_same_payment_built_correctly_is_valid(
        self, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        valid = _violating_body(chain, wallets, Violation(Reason.INVALID_PAYLOAD))
        verified = await facilitator.verify(valid)
        assert verified == {"isValid": True, "payer": str(wallets.payer.pubkey())}


class TestPaymentsThatPass:
    async def test_the_x402_client_payload_verifies(
        self, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        required = requirements(wallets.merchant.pubkey(), wallets.fee_payer.pubkey())
        client = ExactSvmClientScheme(KeypairSigner(wallets.payer), rpc_url=chain.url)
        inner = client.create_payment_payload(PaymentRequirements.model_validate(required))
        verified = await facilitator.verify(body(inner["transaction"], required))
        assert verified["isValid"] is True, verified

    async def test_token_2022_settles_to_the_token_2022_account(
        self, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        merchant, fee_payer = wallets.merchant.pubkey(), wallets.fee_payer.pubkey()
        required = requirements(merchant, fee_payer, asset=SANDBOX_USDC_2022_MINT)
        shape = PaymentShape(mint=USDC_2022, program=TOKEN_2022_PROGRAM)
        transaction = build_payment(chain, wallets.payer, merchant, fee_payer, shape)
        settled = await facilitator.settle(body(transaction, required))
        assert settled["success"] is True, settled
        assert token_amount(chain, merchant, USDC_2022, TOKEN_2022_PROGRAM) == PRICE

    async def test_x402_v1_names_and_fields_are_served(
        self, facilitator: Facilitator, wallets: Wallets, chain: Sandbox
    ) -> None:
        merchant, fee_payer = wallets.merchant.pubkey(), wallets.fee_payer.pubkey()
        transaction = build_payment(chain, wallets.payer, merchant, fee_payer, PaymentShape())
        required = {
            "scheme": "exact",
            "network": "solana-devnet",
            "maxAmountRequired": str(PRICE),
            "resource": "https://merchant.example/report",
            "description": "a report",
            "mimeType": "application/json",
            "payTo": str(merchant),
            "maxTimeoutSeconds": 60,
            "asset": str(USDC),
            "extra": {"feePayer": str(fee_payer)},
        }
        v1 = {
            "x402Version": 1,
            "paymentPayload": {
                "x402Version": 1,
                "scheme": "exact",
                "network": "solana-devnet",
                "payload": {"transaction": transaction},
            },
            "paymentRequirements": required,
        }
        assert (await facilitator.verify(v1))["isValid"] is True
        settled = await facilitator.settle(v1)
        assert settled["success"] is True, settled
        assert settled["network"] == "solana-devnet"
        assert token_amount(chain, merchant, USDC, TOKEN_PROGRAM) == PRICE


class TestMalformedBodies:
    async def test_an_unknown_version_is_an_invalid_payment_not_an_error(
        self, facilitator: Facilitator, wallets: Wallets
    ) -> None:
        required = requirements(wallets.merchant.pubkey(), wallets.fee_payer.pubkey())
        reply = await facilitator.verify({**body("AAAA", required), "x402Version": 3})
        assert reply["invalidReason"] == Reason.INVALID_X402_VERSION

    @pytest.mark.parametrize(
        ("remove", "field"),
        [
            ("payTo", "body.paymentRequirements.payTo"),
            ("maxTimeoutSeconds", "body.paymentRequirements.maxTimeoutSeconds"),
        ],
    )
    async def test_a_missing_field_is_422_naming_it(
        self, facilitator: Facilitator, wallets: Wallets, remove: str, field: str
    ) -> None:
        required = requirements(wallets.merchant.pubkey(), wallets.fee_payer.pubkey())
        broken = body("AAAA", required)
        del broken["paymentRequirements"][remove]
        reply = await facilitator.client.post("/verify", json=broken)
        assert reply.status_code == 422
        assert reply.headers["content-type"] == "application/problem+json"
        assert field in [error["field"] for error in reply.json()["errors"]]

    async def test_an_amount_that_is_not_base_units_is_422(
        self, facilitator: Facilitator, wallets: Wallets
    ) -> None:
        required = requirements(wallets.merchant.pubkey(), wallets.fee_payer.pubkey())
        required["amount"] = "1.5"
        reply = await facilitator.client.post("/settle", json=body("AAAA", required))
        assert reply.status_code == 422
        fields = [error["field"] for error in reply.json()["errors"]]
        assert "body.paymentPayload.accepted.amount" in fields

    async def test_a_body_that_is_not_json_is_422(self, facilitator: Facilitator) -> None:
        reply = await facilitator.client.post(
            "/verify", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert reply.status_code == 422

    async def test_a_caller_without_a_facilitator_scope_is_403(
        self, facilitator: Facilitator, signer: Any, wallets: Wallets
    ) -> None:
        from tests.conftest import assertion_header

        required = requirements(wallets.merchant.pubkey(), wallets.fee_payer.pubkey())
        headers = assertion_header(signer, "facilitator", scopes=frozenset({"read"}))
        reply = await facilitator.client.post(
            "/settle", json=body("AAAA", required), headers=headers
        )
        assert reply.status_code == 403
