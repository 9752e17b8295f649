"""The TrovoTech sandbox over real HTTP, with a real webhook receiver that checks signatures.

One sandbox and one receiver run on free ports for the whole module (uvicorn in threads); the
receiver verifies ``X-TrovoTech-Signature`` itself (hex HMAC-SHA256 of the raw body, as the spec
says, without the sandbox's code) and can be told to fail chosen events. Faults are reset after
every test. Timings are shortened through settings (150 ms mint confirmation, 50 ms backoff).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send
from stellar_sdk import Keypair, StrKey, TransactionEnvelope
from stellar_sdk.operation import ChangeTrust, Payment

from sandboxes.trovotech import SANDBOX_CUSTODY_WALLET, SANDBOX_ISSUER_PUBLIC_KEY
from sandboxes.trovotech.app import create_app
from sandboxes.trovotech.cli import main as sandbox_cli
from sandboxes.trovotech.config import (
    BANTU_MAINNET_PASSPHRASE,
    CUSTODY_SEED,
    ISSUER_SEED,
    TrovoTechSandboxSettings,
    sandbox_keypair,
)
from sandboxes.trovotech.custody import split_by_largest_remainder
from shared.devrun import prepare_environment
from shared.topology import SANDBOXES

API_KEY = "test-trovotech-api-key"
ISSUER = "FT_TEST_ISSUER"
WEBHOOK_SECRET = "test-trovotech-webhook-secret"
TESTNET = "Bantu Testnet"
MINT_CONFIRM_MS = 150
BACKOFF_S = 0.05
KEY_HEADERS = {"X-TW-SERVICE-LINK-API-KEY": API_KEY}
PACKAGES_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(app: Any, port: int, lifespan: Literal["on", "off"] = "on") -> Iterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan=lifespan,
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


def wait_until(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- the webhook receiver -------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One POST the receiver got."""

    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    status: int
    at: float

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


@dataclass
class Receiver:
    """A custody-like endpoint: 401 on a bad signature, 200 otherwise (or 503 when told)."""

    secret: bytes
    url: str = ""
    received: list[Received] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)  # event_type -> 503s left
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        expected = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expected, headers.get("x-trovotech-signature", ""))
        status = 200 if valid else 401
        with self.lock:
            event_type = json.loads(body).get("event_type", "") if valid else ""
            if valid and self.failing.get(event_type, 0) > 0:
                self.failing[event_type] -= 1
                status = 503
            self.received.append(Received(headers, body, valid, status, time.monotonic()))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def fail(self, event_type: str, times: int) -> None:
        """Answer the next ``times`` deliveries of ``event_type`` with 503."""
        with self.lock:
            self.failing[event_type] = times

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        """What arrived and matches, in arrival order."""
        with self.lock:
            return [item for item in self.received if predicate(item)]

    def of_type(self, event_type: str, **data: Any) -> list[Received]:
        """Validly signed deliveries of ``event_type`` whose data has these fields."""

        def wanted(item: Received) -> bool:
            if not item.signature_valid or item.event["event_type"] != event_type:
                return False
            return all(item.event["data"].get(name) == value for name, value in data.items())

        return self.matching(wanted)

    def wait_matching(
        self, predicate: Callable[[Received], bool], count: int, timeout: float = 5.0
    ) -> list[Received]:
        """Wait until exactly ``count`` deliveries match (any signature); return them."""
        result: list[Received] = wait_until(
            lambda: len(found := self.matching(predicate)) == count and found,
            timeout,
            f"{count} matching deliveries",
        )
        return result

    def wait_for(
        self, event_type: str, count: int = 1, timeout: float = 5.0, **data: Any
    ) -> list[Received]:
        """Wait until ``count`` matching deliveries arrived; return them."""
        result: list[Received] = wait_until(
            lambda: (found := self.of_type(event_type, **data)) and len(found) >= count and found,
            timeout,
            f"{count} x {event_type} {data}",
        )
        return result


# -- the sandbox client ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrovoTech:
    """The running sandbox, called as the custody client would."""

    url: str
    client: httpx.Client

    def post(
        self, path: str, body: dict[str, Any], key: str | None = None, **headers: str
    ) -> httpx.Response:
        extra = {"Idempotency-Key": key} if key else {}
        return self.client.post(
            f"{self.url}{path}", json=body, headers={**KEY_HEADERS, **extra, **headers}
        )

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.client.get(f"{self.url}{path}", params=params, headers=KEY_HEADERS)

    def admin(self, method: str, route: str, body: Any = None, **params: str) -> Any:
        reply = self.client.request(method, f"{self.url}/sandbox{route}", json=body, params=params)
        assert reply.status_code < 300, reply.text
        return reply.json() if reply.content else None

    def faults(self, **changes: Any) -> dict[str, Any]:
        faults: dict[str, Any] = self.admin("POST", "/faults", changes)
        return faults

    def wallet(self, email: str | None = None) -> dict[str, Any]:
        email = email or f"{uuid.uuid4().hex[:12]}@investors.example"
        reply = self.post(
            "/v1/wallet/create",
            {"issuer_id": ISSUER, "investor_email": email, "investor_name": "Ada Investor"},
        )
        assert reply.status_code == 201, reply.text
        wallet: dict[str, Any] = reply.json()
        return wallet

    def mint_body(self, wallet: str, asset_id: str, fraction: float | str) -> dict[str, Any]:
        # The seeds' camelCase, as FleetFi's guide shows it.
        return {
            "issuerId": ISSUER,
            "assetId": asset_id,
            "assetType": "EV",
            "fractionOwned": fraction,
            "investAmount": 50_000,
            "investorWallet": wallet,
        }

    def mint(self, wallet: str, asset_id: str, fraction: float | str = 10) -> dict[str, Any]:
        reply = self.post("/v1/token/mint", self.mint_body(wallet, asset_id, fraction))
        assert reply.status_code == 202, reply.text
        token: dict[str, Any] = reply.json()
        return token

    def confirmed(self, token_id: str, receiver: Receiver) -> None:
        receiver.wait_for("token.minted", token_id=token_id)

    def tokens(self, wallet: str) -> dict[str, dict[str, Any]]:
        reply = self.get("/v1/tokens/my", wallet=wallet)
        assert reply.status_code == 200, reply.text
        return {token["token_id"]: token for token in reply.json()["tokens"]}

    def requests_with(self, key: str) -> list[dict[str, Any]]:
        return [r for r in self.admin("GET", "/requests") if r["idempotency_key"] == key]


def _asset_id() -> str:
    return f"asset_{uuid.uuid4().hex[:10]}"


def _envelope(xdr: str, passphrase: str = TESTNET) -> Any:
    return TransactionEnvelope.from_xdr(xdr, passphrase)


def _signed_by(envelope: Any, address: str) -> bool:
    keypair = Keypair.from_public_key(address)
    for decorated in envelope.signatures:
        if decorated.signature_hint == keypair.signature_hint():
            keypair.verify(envelope.hash(), decorated.signature)  # raises if it does not verify
            return True
    return False


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    port = _free_port()
    target = Receiver(
        WEBHOOK_SECRET.encode(), url=f"http://127.0.0.1:{port}/api/webhooks/trovotech"
    )
    for _ in _serve(target, port, lifespan="off"):
        yield target


@pytest.fixture(scope="module")
def trovotech(receiver: Receiver) -> Iterator[TrovoTech]:
    port = _free_port()
    settings = TrovoTechSandboxSettings(
        port=port,
        api_key=API_KEY,
        issuer_id=ISSUER,
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=receiver.url,
        mint_confirm_delay_ms=MINT_CONFIRM_MS,
        payout_settle_delay_ms=50,
        webhook_backoff_s=BACKOFF_S,
        webhook_timeout_s=2,
        log_level="WARNING",
    )
    with httpx.Client(timeout=10) as client:
        for _ in _serve(create_app(settings), port):
            yield TrovoTech(f"http://127.0.0.1:{port}", client)


@pytest.fixture(scope="module")
def instant() -> Iterator[TrovoTech]:
    """Mints confirmed in the reply, mainnet, no webhook URL, idempotency keys required."""
    port = _free_port()
    settings = TrovoTechSandboxSettings(
        port=port,
        api_key=API_KEY,
        issuer_id=ISSUER,
        webhook_url="",
        mint_confirm_delay_ms=0,
        bantu_network="mainnet",
        require_idempotency_key=True,
        log_level="WARNING",
    )
    with httpx.Client(timeout=10) as client:
        for _ in _serve(create_app(settings), port):
            yield TrovoTech(f"http://127.0.0.1:{port}", client)


@pytest.fixture(autouse=True)
def _faults_off(trovotech: TrovoTech) -> Iterator[None]:
    yield
    trovotech.admin("DELETE", "/faults")


# -- connection and authentication ----------------------------------------------------------


class TestConnection:
    def test_get_and_head_on_the_base_url_answer_200_with_the_key(
        self, trovotech: TrovoTech
    ) -> None:
        for path in ("/v1", "/"):
            reply = trovotech.get(path)
            assert reply.status_code == 200, reply.text
            assert reply.json()["network_passphrase"] == TESTNET
            assert reply.json()["issuer_id"] == ISSUER
            head = trovotech.client.head(f"{trovotech.url}{path}", headers=KEY_HEADERS)
            assert head.status_code == 200
            assert head.content == b""

    def test_the_api_is_served_at_the_root_and_under_v1(self, trovotech: TrovoTech) -> None:
        wallet = trovotech.wallet()
        for prefix in ("", "/v1"):
            reply = trovotech.get(f"{prefix}/wallet/{wallet['wallet_id']}")
            assert reply.status_code == 200
            assert reply.json()["wallet_address"] == wallet["wallet_address"]


class TestAuthentication:
    def test_a_missing_key_is_401_with_a_trovotech_error_body(self, trovotech: TrovoTech) -> None:
        reply = trovotech.client.get(f"{trovotech.url}/v1/tokens/my")
        assert reply.status_code == 401
        assert reply.json() == {
            "error": "error-missing-api-key",
            "data": "X-TW-SERVICE-LINK-API-KEY",
            "message": reply.json()["message"],
        }

    @pytest.mark.parametrize(
        "headers",
        [{"X-TW-SERVICE-LINK-API-KEY": "wrong"}, {"Authorization": "Bearer wrong"}],
        ids=["service-link-header", "bearer"],
    )
    def test_a_wrong_key_is_401(self, trovotech: TrovoTech, headers: dict[str, str]) -> None:
        reply = trovotech.client.post(f"{trovotech.url}/v1/wallet/create", json={}, headers=headers)
        assert reply.status_code == 401
        assert reply.json()["error"] == "error-invalid-api-key"

    def test_the_key_is_accepted_as_a_bearer_token(self, trovotech: TrovoTech) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        assert trovotech.client.get(f"{trovotech.url}/v1", headers=headers).status_code == 200

    def test_another_issuer_is_403(self, trovotech: TrovoTech) -> None:
        body = {"issuer_id": "FT_SOMEONE_ELSE", "investor_email": "x@investors.example"}
        reply = trovotech.post("/v1/wallet/create", body)
        assert reply.status_code == 403
        assert reply.json()["error"] == "error-issuer-not-authorized"
        assert reply.json()["data"] == "issuer_id"


# -- wallets --------------------------------------------------------------------------------


class TestWallets:
    def test_a_wallet_is_a_real_keypair_and_its_creation_is_signed_and_announced(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        wallet = trovotech.wallet()
        assert StrKey.is_valid_ed25519_public_key(wallet["wallet_address"])
        assert wallet["native_balance"] == "5"
        assert wallet["balance"] == 0
        (delivery,) = receiver.wait_for("wallet.created", wallet_address=wallet["wallet_address"])
        data = delivery.event["data"]
        assert data["wallet_id"] == wallet["wallet_id"]
        assert data["trustee_ref"] == wallet["trustee_ref"]
        assert data["user_email"] == wallet["investor_email"]
        assert data["tx_hash"] == wallet["tx_hash"]

    def test_creating_again_for_the_same_investor_returns_the_same_wallet(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        first = trovotech.wallet()
        body = {"issuer_id": ISSUER, "investorEmail": first["investor_email"].upper()}
        again = trovotech.post("/wallet/create", body)
        assert again.status_code == 200
        assert again.json()["wallet_id"] == first["wallet_id"]
        receiver.wait_for("wallet.created", wallet_address=first["wallet_address"])
        time.sleep(0.1)
        assert len(receiver.of_type("wallet.created", user_email=first["investor_email"])) == 1

    def test_a_wallet_is_found_by_id_or_address_and_404_otherwise(
        self, trovotech: TrovoTech
    ) -> None:
        wallet = trovotech.wallet()
        by_address = trovotech.get(f"/v1/wallet/{wallet['wallet_address']}")
        assert by_address.json()["wallet_id"] == wallet["wallet_id"]
        missing = trovotech.get(f"/v1/wallet/{Keypair.random().public_key}")
        assert missing.status_code == 404
        assert missing.json()["error"] == "error-wallet-not-found"


# -- mints ----------------------------------------------------------------------------------


class TestMint:
    def test_tx_hash_is_the_hash_of_a_real_envelope_signed_for_the_passphrase(
        self, trovotech: TrovoTech
    ) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        token = trovotech.mint(wallet, _asset_id(), "12.5")
        envelope = _envelope(token["envelope_xdr"])
        assert token["network_passphrase"] == TESTNET
        assert envelope.hash_hex() == token["tx_hash"]
        assert (
            _envelope(token["envelope_xdr"], BANTU_MAINNET_PASSPHRASE).hash_hex()
            != (token["tx_hash"])
        )
        transaction = envelope.transaction
        assert transaction.source.account_id == SANDBOX_ISSUER_PUBLIC_KEY
        assert transaction.memo.memo_text.decode() == token["token_id"]
        trust, payment = transaction.operations
        assert isinstance(trust, ChangeTrust)
        assert trust.source is not None
        assert trust.source.account_id == wallet
        assert isinstance(payment, Payment)
        assert payment.destination.account_id == wallet
        assert payment.asset.code == token["asset_code"]
        assert payment.asset.issuer == SANDBOX_ISSUER_PUBLIC_KEY
        assert Decimal(payment.amount) == Decimal("12.5")
        assert _signed_by(envelope, SANDBOX_ISSUER_PUBLIC_KEY)
        assert _signed_by(envelope, wallet)

    def test_a_mint_is_pending_until_token_minted_is_delivered(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        asset_id = _asset_id()
        token = trovotech.mint(wallet, asset_id)
        assert token["status"] == "pending"
        assert token["minted_at"] is None
        assert trovotech.tokens(wallet)[token["token_id"]]["status"] == "pending"
        (minted,) = receiver.wait_for("token.minted", token_id=token["token_id"])
        data = minted.event["data"]
        assert data["tx_hash"] == token["tx_hash"]
        assert data["asset_id"] == asset_id
        assert data["investor_wallet"] == wallet
        assert data["fraction_owned"] == 10
        assert data["investment_amount"] == 50_000
        assert data["chain"] == "bantu"
        held = trovotech.tokens(wallet)[token["token_id"]]
        assert held["status"] == "confirmed"
        assert held["minted_at"] is not None
        (custody,) = receiver.wait_for("custody.updated", asset_id=asset_id)
        assert custody.event["data"]["status"] == "in_custody"

    def test_minting_past_100_percent_is_422_with_remaining_allocated_requested(
        self, trovotech: TrovoTech
    ) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        asset_id = _asset_id()
        trovotech.mint(wallet, asset_id, 60)
        trovotech.mint(wallet, asset_id, 40)
        reply = trovotech.post("/v1/token/mint", trovotech.mint_body(wallet, asset_id, 0.5))
        assert reply.status_code == 422
        body = reply.json()
        assert body["error"] == "error-insufficient-remaining-ownership"
        assert (body["remaining"], body["allocated"], body["requested"]) == (0, 100, 0.5)

    async def test_concurrent_mints_never_over_allocate_an_asset(
        self, trovotech: TrovoTech
    ) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        body = trovotech.mint_body(wallet, _asset_id(), 10)
        async with httpx.AsyncClient(timeout=10, headers=KEY_HEADERS) as client:
            replies = await asyncio.gather(
                *(client.post(f"{trovotech.url}/v1/token/mint", json=body) for _ in range(20))
            )
        statuses = sorted(reply.status_code for reply in replies)
        assert statuses == [202] * 10 + [422] * 10

    def test_an_unknown_or_malformed_investor_wallet_is_refused(self, trovotech: TrovoTech) -> None:
        unknown = trovotech.post(
            "/v1/token/mint", trovotech.mint_body(Keypair.random().public_key, _asset_id(), 5)
        )
        assert unknown.status_code == 404
        malformed = trovotech.post(
            "/v1/token/mint", trovotech.mint_body("GBANTU" + "X" * 50, _asset_id(), 5)
        )
        assert malformed.status_code == 400
        assert malformed.json()["error"] == "error-invalid-parameter"
        assert malformed.json()["data"] == "investorWallet"


class TestOtherConfigurations:
    def test_with_no_delay_a_mint_is_confirmed_in_the_reply_and_hashed_for_mainnet(
        self, instant: TrovoTech
    ) -> None:
        body = {"issuer_id": ISSUER, "investor_email": "solo@investors.example"}
        wallet = instant.post("/wallet/create", body, key=uuid.uuid4().hex).json()
        mint = instant.mint_body(wallet["wallet_address"], _asset_id(), 25)
        reply = instant.post("/token/mint", mint, key=uuid.uuid4().hex)
        assert reply.status_code == 201, reply.text
        token = reply.json()
        assert token["status"] == "confirmed"
        assert token["minted_at"] is not None
        assert token["network_passphrase"] == BANTU_MAINNET_PASSPHRASE
        assert (
            _envelope(token["envelope_xdr"], BANTU_MAINNET_PASSPHRASE).hash_hex()
            == (token["tx_hash"])
        )
        minted = instant.admin("GET", "/deliveries", event_type="token.minted")
        assert [delivery["status"] for delivery in minted] == ["skipped"]

    def test_a_post_without_an_idempotency_key_is_refused_when_keys_are_required(
        self, instant: TrovoTech
    ) -> None:
        reply = instant.post("/v1/wallet/create", {"issuer_id": ISSUER, "email": "a@b.example"})
        assert reply.status_code == 400
        assert reply.json()["error"] == "error-missing-idempotency-key"

    def test_a_body_that_is_not_json_is_400(self, instant: TrovoTech) -> None:
        reply = instant.client.post(
            f"{instant.url}/v1/token/mint",
            content=b"{not json",
            headers={**KEY_HEADERS, "Content-Type": "application/json"},
        )
        assert reply.status_code == 400
        assert reply.json()["data"] == "body"


class TestIdempotency:
    def test_the_same_key_replays_the_reply_and_mints_once(self, trovotech: TrovoTech) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        body = trovotech.mint_body(wallet, _asset_id(), 5)
        key = uuid.uuid4().hex
        first = trovotech.post("/v1/token/mint", body, key=key)
        again = trovotech.post("/token/mint", body, key=key)  # a retry through the other base URL
        assert first.status_code == again.status_code == 202
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert list(trovotech.tokens(wallet)) == [first.json()["token_id"]]

    def test_the_same_key_with_another_body_is_422(self, trovotech: TrovoTech) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        key = uuid.uuid4().hex
        asset_id = _asset_id()
        assert trovotech.post("/v1/token/mint", trovotech.mint_body(wallet, asset_id, 5), key=key)
        other = trovotech.post("/v1/token/mint", trovotech.mint_body(wallet, asset_id, 6), key=key)
        assert other.status_code == 422
        assert other.json()["error"] == "error-idempotency-key-reused"


# -- payouts and transfers ------------------------------------------------------------------


class TestPayouts:
    def test_a_payout_splits_by_largest_remainder_and_pays_on_chain(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        wallets = [trovotech.wallet()["wallet_address"] for _ in range(3)]
        asset_id = _asset_id()
        tokens = [
            trovotech.mint(w, asset_id, f) for w, f in zip(wallets, (10, 20, 30), strict=True)
        ]
        token_ids = [token["token_id"] for token in tokens]
        body = {
            "issuer_id": ISSUER,
            "token_ids": token_ids,
            "total_amount": 100,
            "period": "2025-11",
            "description": "November revenue",
        }
        reply = trovotech.post("/v1/payout/distribute", body)
        assert reply.status_code == 202, reply.text
        assert reply.json()["status"] == "processing"
        assert reply.json()["tx_hash"] is None
        payout_id = reply.json()["payout_id"]

        (completed,) = receiver.wait_for("payout.completed", payout_id=payout_id)
        data = completed.event["data"]
        parts = {part["token_id"]: part["amount"] for part in data["distributions"]}
        assert parts == dict(zip(token_ids, (17, 33, 50), strict=True))
        assert data["period"] == "2025-11"
        assert data["currency"] == "NGN"
        payout = trovotech.get(f"/v1/payout/{payout_id}").json()
        assert payout["status"] == "completed"
        envelope = _envelope(payout["envelope_xdr"])
        assert envelope.hash_hex() == data["tx_hash"] == payout["tx_hash"]
        assert envelope.transaction.source.account_id == SANDBOX_CUSTODY_WALLET
        assert _signed_by(envelope, SANDBOX_CUSTODY_WALLET)
        paid = [
            (op.destination.account_id, Decimal(op.amount))
            for op in envelope.transaction.operations
        ]
        assert paid == [(w, Decimal(a) / 100) for w, a in zip(wallets, (17, 33, 50), strict=True)]
        for wallet, token_id, amount in zip(wallets, token_ids, (17, 33, 50), strict=True):
            assert trovotech.get(f"/v1/wallet/{wallet}").json()["balance"] == amount
            held = trovotech.tokens(wallet)[token_id]
            assert held["total_returns"] == amount
            assert held["current_value"] == 50_000 + amount

    def test_an_injected_payout_failure_is_announced_and_pays_nothing(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        token = trovotech.mint(wallet, _asset_id(), 50)
        trovotech.faults(payout_fail_next=1)
        body = {"issuer_id": ISSUER, "tokenIds": [token["token_id"]], "totalRevenue": 999}
        reply = trovotech.post("/v1/payout/distribute", {**body, "period": "2025-10"})
        assert reply.status_code == 202
        payout_id = reply.json()["payout_id"]
        (failed,) = receiver.wait_for("payout.failed", payout_id=payout_id)
        assert failed.event["data"]["reason"]
        assert trovotech.get(f"/v1/payout/{payout_id}").json()["status"] == "failed"
        assert trovotech.get(f"/v1/wallet/{wallet}").json()["balance"] == 0

    def test_an_unknown_token_is_404(self, trovotech: TrovoTech) -> None:
        body = {
            "issuer_id": ISSUER,
            "token_ids": ["TKN_NOPE"],
            "total_amount": 1,
            "period": "2025-01",
        }
        reply = trovotech.post("/v1/payout/distribute", body)
        assert reply.status_code == 404
        assert reply.json()["error"] == "error-token-not-found"

    @given(
        total=st.integers(min_value=1, max_value=10**12),
        weights=st.lists(
            st.decimals(min_value="0.0000001", max_value=100, places=7), min_size=1, max_size=30
        ),
    )
    def test_largest_remainder_parts_always_sum_to_the_total(
        self, total: int, weights: list[Decimal]
    ) -> None:
        parts = split_by_largest_remainder(total, weights)
        assert sum(parts) == total
        exact = [Decimal(total) * w / sum(weights) for w in weights]
        assert all(abs(part - share) < 1 for part, share in zip(parts, exact, strict=True))


class TestTransfers:
    def test_a_confirmed_token_moves_in_a_signed_transaction(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        sender = trovotech.wallet()["wallet_address"]
        recipient = trovotech.wallet()["wallet_address"]
        token = trovotech.mint(sender, _asset_id(), 7)
        body = {"issuer_id": ISSUER, "token_id": token["token_id"], "to_wallet": recipient}
        early = trovotech.post("/v1/token/transfer", body)
        assert early.status_code == 409
        assert early.json()["error"] == "error-token-not-confirmed"
        trovotech.confirmed(token["token_id"], receiver)

        reply = trovotech.post("/v1/token/transfer", body)
        assert reply.status_code == 200, reply.text
        envelope = _envelope(reply.json()["envelope_xdr"])
        assert envelope.hash_hex() == reply.json()["tx_hash"]
        assert _signed_by(envelope, sender)
        assert _signed_by(envelope, recipient)
        (moved,) = receiver.wait_for("transfer.completed", token_id=token["token_id"])
        assert moved.event["data"]["from_wallet"] == sender
        assert moved.event["data"]["to_wallet"] == recipient
        assert moved.event["data"]["tx_hash"] == reply.json()["tx_hash"]
        assert token["token_id"] in trovotech.tokens(recipient)
        assert token["token_id"] not in trovotech.tokens(sender)


class TestTelemetry:
    def test_a_snapshot_is_anchored_by_its_hash(self, trovotech: TrovoTech) -> None:
        body = {"assetId": "ev_42", "batteryLevel": 81, "kilometers": 1200, "status": "active"}
        first = trovotech.post("/v1/telemetry/sync", body)
        again = trovotech.post("/v1/telemetry/sync", body)
        assert first.status_code == 200, first.text
        assert first.json()["success"] is True
        assert first.json()["metadata_hash"] == again.json()["metadata_hash"]
        assert first.json()["uri"].endswith(first.json()["metadata_hash"])


# -- webhook delivery -----------------------------------------------------------------------


def _emit(trovotech: TrovoTech, event_type: str, **data: Any) -> dict[str, Any]:
    event: dict[str, Any] = trovotech.admin(
        "POST", "/webhooks", {"event_type": event_type, "data": data}
    )
    return event


def _deliveries(trovotech: TrovoTech, event_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = trovotech.admin("GET", "/deliveries", event_id=event_id)
    return found


def _settled_deliveries(trovotech: TrovoTech, event_id: str) -> list[dict[str, Any]]:
    """The event's deliveries once none is pending any more."""
    settled: list[dict[str, Any]] = wait_until(
        lambda: (
            (found := _deliveries(trovotech, event_id))
            and all(d["status"] != "pending" for d in found)
            and found
        ),
        what=f"the deliveries of {event_id}",
    )
    return settled


class TestWebhookDelivery:
    def test_events_are_signed_with_the_secret_and_carry_an_id_and_a_time(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        wallet = trovotech.wallet()
        (delivery,) = receiver.wait_for("wallet.created", wallet_address=wallet["wallet_address"])
        expected = hmac.new(WEBHOOK_SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
        assert delivery.headers["x-trovotech-signature"] == expected
        event = delivery.event
        assert delivery.headers["x-trovotech-event-id"] == event["event_id"]
        assert delivery.headers["x-trovotech-event"] == "wallet.created"
        assert datetime.fromisoformat(event["created_at"]).tzinfo is not None
        other = trovotech.wallet()
        (second,) = receiver.wait_for("wallet.created", wallet_address=other["wallet_address"])
        assert second.event["event_id"] != event["event_id"]
        assert second.event["created_at"] >= event["created_at"]

    def test_a_receiver_5xx_is_retried_with_growing_backoff(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        event_type = f"test.retry.{uuid.uuid4().hex[:8]}"
        receiver.fail(event_type, 2)
        event = _emit(trovotech, event_type, n=1)
        attempts = receiver.wait_matching(lambda i: i.event["event_type"] == event_type, 3)
        assert [item.status for item in attempts] == [503, 503, 200]
        assert [item.headers["x-trovotech-attempt"] for item in attempts] == ["1", "2", "3"]
        assert len({item.body for item in attempts}) == 1
        first_gap = attempts[1].at - attempts[0].at
        second_gap = attempts[2].at - attempts[1].at
        assert first_gap >= BACKOFF_S * 0.9
        assert second_gap >= 2 * BACKOFF_S * 0.9
        (delivery,) = _settled_deliveries(trovotech, event["event_id"])
        assert delivery["status"] == "delivered"
        assert [a["status_code"] for a in delivery["attempts"]] == [503, 503, 200]

    def test_delivery_gives_up_after_three_attempts(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        event_type = f"test.down.{uuid.uuid4().hex[:8]}"
        receiver.fail(event_type, 10)
        event = _emit(trovotech, event_type)
        (delivery,) = _settled_deliveries(trovotech, event["event_id"])
        assert delivery["status"] == "failed"
        assert len(delivery["attempts"]) == 3
        assert len(receiver.matching(lambda i: i.event.get("event_type") == event_type)) == 3

    def test_an_event_is_redelivered_many_times_at_once_with_the_same_id(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        event = _emit(trovotech, f"test.redeliver.{uuid.uuid4().hex[:8]}")
        trovotech.admin("POST", f"/webhooks/{event['event_id']}/redeliver", {"times": 20})
        copies = receiver.wait_matching(lambda i: i.event["event_id"] == event["event_id"], 21)
        assert len({item.body for item in copies}) == 1
        assert all(item.signature_valid for item in copies)


# -- faults ---------------------------------------------------------------------------------


class TestFaults:
    def test_an_error_rate_of_one_answers_every_api_call_with_a_5xx(
        self, trovotech: TrovoTech
    ) -> None:
        trovotech.faults(error_rate=1.0, error_status=502)
        reply = trovotech.get("/v1")
        assert reply.status_code == 502
        assert set(reply.json()) == {"error", "data", "message"}
        assert reply.headers["X-TrovoTech-Sandbox-Fault"] == "error"
        assert trovotech.client.get(f"{trovotech.url}/ready").status_code == 200
        assert trovotech.admin("GET", "/requests", path="/v1")[-1]["faults"] == ["error"]

    def test_fail_next_fails_exactly_that_many_calls_on_the_chosen_paths(
        self, trovotech: TrovoTech
    ) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        trovotech.faults(fail_next=2, paths=["/token/mint"])
        assert trovotech.get("/v1").status_code == 200  # not a chosen path
        body = trovotech.mint_body(wallet, _asset_id(), 1)
        statuses = [trovotech.post("/v1/token/mint", body).status_code for _ in range(3)]
        assert statuses == [503, 503, 202]

    def test_an_error_after_the_effect_mints_twice_without_a_key_and_once_with_one(
        self, trovotech: TrovoTech
    ) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        body = trovotech.mint_body(wallet, _asset_id(), 1)
        trovotech.faults(fail_next=1, error_after_effect=True)
        assert trovotech.post("/v1/token/mint", body).status_code == 503
        assert trovotech.post("/v1/token/mint", body).status_code == 202
        assert len(trovotech.tokens(wallet)) == 2  # the lost reply's mint happened

        key = uuid.uuid4().hex
        trovotech.faults(fail_next=1, error_after_effect=True)
        lost = trovotech.post("/v1/token/mint", body, key=key)
        assert lost.status_code == 503
        assert lost.headers["X-TrovoTech-Sandbox-Fault"] == "error_after_effect"
        retried = trovotech.post("/v1/token/mint", body, key=key)
        assert retried.status_code == 202
        assert retried.headers["Idempotent-Replayed"] == "true"
        assert len(trovotech.tokens(wallet)) == 3

    def test_latency_is_added_to_replies(self, trovotech: TrovoTech) -> None:
        trovotech.faults(latency_ms=300)
        started = time.perf_counter()
        reply = trovotech.get("/v1")
        assert time.perf_counter() - started >= 0.3
        assert reply.status_code == 200
        assert reply.headers["X-TrovoTech-Sandbox-Fault"] == "latency"

    def test_a_timed_out_call_is_processed_late_and_a_keyed_retry_wins(
        self, trovotech: TrovoTech
    ) -> None:
        wallet = trovotech.wallet()["wallet_address"]
        body = trovotech.mint_body(wallet, _asset_id(), 3)
        key = uuid.uuid4().hex
        trovotech.faults(timeout_next=1, timeout_s=1.0)
        with pytest.raises(httpx.ReadTimeout):
            trovotech.client.post(
                f"{trovotech.url}/v1/token/mint",
                json=body,
                headers={**KEY_HEADERS, "Idempotency-Key": key},
                timeout=0.3,
            )
        retried = trovotech.post("/v1/token/mint", body, key=key)
        assert retried.status_code == 202
        records = wait_until(
            lambda: len(found := trovotech.requests_with(key)) == 2 and found,
            what="the timed-out call to finish",
        )
        late = next(record for record in records if record["faults"] == ["timeout"])
        assert late["replayed"] is True
        assert late["duration_ms"] >= 1000
        assert list(trovotech.tokens(wallet)) == [retried.json()["token_id"]]

    def test_duplicate_deliveries_repeat_the_same_signed_event(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        trovotech.faults(webhook_duplicate_rate=1.0)
        wallet = trovotech.wallet()
        copies = receiver.wait_for("wallet.created", 2, wallet_address=wallet["wallet_address"])
        assert copies[0].body == copies[1].body
        assert (
            copies[0].headers["x-trovotech-signature"] == copies[1].headers["x-trovotech-signature"]
        )
        assert (
            copies[0].headers["x-trovotech-delivery"] != copies[1].headers["x-trovotech-delivery"]
        )
        kinds = sorted(d["kind"] for d in _deliveries(trovotech, copies[0].event["event_id"]))
        assert kinds == ["duplicate", "original"]

    def test_out_of_order_delivers_a_window_of_events_newest_first(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        trovotech.faults(webhook_out_of_order=True, webhook_reorder_window_ms=300)
        prefix = f"test.order.{uuid.uuid4().hex[:8]}"
        emitted = [_emit(trovotech, f"{prefix}.{n}")["event_id"] for n in range(4)]
        arrived = receiver.wait_matching(lambda i: i.event["event_type"].startswith(prefix), 4)
        assert [item.event["event_id"] for item in arrived] == emitted[::-1]

    def test_a_bad_signature_is_refused_by_the_receiver_and_not_retried(
        self, trovotech: TrovoTech, receiver: Receiver
    ) -> None:
        trovotech.faults(webhook_bad_signature_rate=1.0)
        event = _emit(trovotech, f"test.badsig.{uuid.uuid4().hex[:8]}")
        (delivery,) = _settled_deliveries(trovotech, event["event_id"])
        assert delivery["signature_valid"] is False
        assert delivery["status"] == "failed"
        assert [a["status_code"] for a in delivery["attempts"]] == [401]
        refused = receiver.matching(lambda i: event["event_id"].encode() in i.body)
        assert [item.signature_valid for item in refused] == [False]

    def test_faults_can_be_read_changed_and_reset(self, trovotech: TrovoTech) -> None:
        assert trovotech.faults(latency_ms=5)["latency_ms"] == 5
        assert trovotech.admin("GET", "/faults")["latency_ms"] == 5
        assert trovotech.admin("DELETE", "/faults")["latency_ms"] == 0
        typo = trovotech.client.post(f"{trovotech.url}/sandbox/faults", json={"eror_rate": 1})
        assert typo.status_code == 400


# -- configuration, topology, command line --------------------------------------------------


class TestSettings:
    def test_operator_names_are_read_and_the_prefixed_name_wins(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TROVOTECH_API_KEY", "from-operator-name")
        monkeypatch.setenv("TROVOTECH_ISSUER_ID", "FT_PROD_1")
        monkeypatch.setenv("TROVOTECH_WEBHOOK_SECRET", "whsec_operator")
        monkeypatch.setenv("BANTU_NETWORK", "mainnet")
        monkeypatch.setenv("TROVOTECH_SANDBOX_FAULTS__ERROR_RATE", "0.25")
        settings = TrovoTechSandboxSettings()
        assert settings.api_key.get_secret_value() == "from-operator-name"
        assert settings.issuer_id == "FT_PROD_1"
        assert settings.webhook_secret.get_secret_value() == "whsec_operator"
        assert settings.passphrase == BANTU_MAINNET_PASSPHRASE
        assert settings.faults.error_rate == 0.25
        monkeypatch.setenv("TROVOTECH_SANDBOX_API_KEY", "prefixed")
        assert TrovoTechSandboxSettings().api_key.get_secret_value() == "prefixed"

    def test_defaults_are_development_values(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in list(os.environ):
            if name.startswith(("TROVOTECH_", "BANTU_")):
                monkeypatch.delenv(name)
        settings = TrovoTechSandboxSettings()
        assert settings.api_key.get_secret_value().startswith("dev-only-")
        assert settings.issuer_id.startswith("dev-only-")
        assert settings.webhook_secret.get_secret_value().startswith("dev-only-")
        assert settings.passphrase == TESTNET
        assert settings.port == 8102

    def test_the_fixed_keys_match_the_published_constants(self) -> None:
        assert sandbox_keypair(ISSUER_SEED).public_key == SANDBOX_ISSUER_PUBLIC_KEY
        assert sandbox_keypair(CUSTODY_SEED).public_key == SANDBOX_CUSTODY_WALLET


class TestTopology:
    def test_kassa_run_starts_the_sandbox_and_points_custody_at_it(self, tmp_path: Path) -> None:
        (entry,) = [sandbox for sandbox in SANDBOXES if sandbox.name == "trovotech"]
        assert (entry.module, entry.port, entry.url_env) == (
            "sandboxes.trovotech",
            8102,
            "TROVOTECH_BASE_URL",
        )
        env = prepare_environment({"KASSA_PORT_OFFSET": "100"}, tmp_path)
        assert env["TROVOTECH_BASE_URL"] == "http://127.0.0.1:8202"


class TestCommandLine:
    def test_serve_runs_the_sandbox_as_kassa_run_starts_it(self) -> None:
        port = _free_port()
        env = {
            **os.environ,
            "TROVOTECH_SANDBOX_WEBHOOK_URL": "",
            "TROVOTECH_SANDBOX_LOG_LEVEL": "WARNING",
        }
        env.pop("TROVOTECH_API_KEY", None)
        env.pop("TROVOTECH_SANDBOX_API_KEY", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "sandboxes.trovotech", "serve", "--port", str(port)],
            cwd=PACKAGES_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"

            def ready() -> bool:
                try:
                    return httpx.get(f"{url}/ready", timeout=1).status_code == 200
                except httpx.TransportError:
                    assert process.poll() is None, "the sandbox exited"
                    return False

            wait_until(ready, timeout=15, what="the sandbox to be ready")
            key = {"Authorization": "Bearer dev-only-trovotech-api-key"}
            assert httpx.get(f"{url}/v1", headers=key, timeout=5).status_code == 200
        finally:
            process.terminate()
            process.wait(10)

    def test_faults_command_changes_a_running_sandbox(
        self, trovotech: TrovoTech, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert sandbox_cli(["faults", "--url", trovotech.url + "/v1", "--set", "latency_ms=7"]) == 0
        assert json.loads(capsys.readouterr().out)["latency_ms"] == 7
        assert trovotech.admin("GET", "/faults")["latency_ms"] == 7
