"""The Solana sandbox against real clients: the ``solana`` AsyncClient, raw JSON-RPC, and the
PyPI ``x402`` SVM client and reference facilitator.

Two sandboxes run on real ports for the whole module: ``live`` with a running slot clock (what
``make run`` starts, sped up to 200 ms a slot) and ``frozen`` whose clock moves only through
``POST /faucet/advance``, for exact statements about confirmation levels and expiry.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.account_decoder import ParsedAccount
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus
from spl.token.instructions import (
    get_associated_token_address,
)
from x402.mechanisms.svm.exact import ExactSvmClientScheme, ExactSvmFacilitatorScheme
from x402.mechanisms.svm.signers import FacilitatorKeypairSigner, KeypairSigner
from x402.schemas import PaymentPayload, PaymentRequirements

from sandboxes.solana_rpc import SANDBOX_USDC_2022_MINT, SANDBOX_USDC_MINT
from sandboxes.solana_rpc.base58 import b58decode, b58encode
from sandboxes.solana_rpc.cli import main as sandbox_cli
from sandboxes.solana_rpc.config import (
    MINT_AUTHORITY_SEED,
    USDC_2022_MINT_SEED,
    USDC_MINT_SEED,
    sandbox_keypair,
)
from shared.devrun import prepare_environment
from shared.topology import SANDBOX_BASE_PORT, SANDBOXES
from tests.solana_sandbox import (
    ATA_RENT,
    DEVNET,
    SOL,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    USDC,
    USDC_2022,
    Sandbox,
)
from tests.solana_sandbox import (
    compute_budget as _compute_budget,
)
from tests.solana_sandbox import (
    funded_wallet as _funded_wallet,
)
from tests.solana_sandbox import (
    latest_blockhash as _blockhash,
)
from tests.solana_sandbox import (
    send_raw as _send_raw,
)
from tests.solana_sandbox import (
    serve_sandbox as _serve,
)
from tests.solana_sandbox import (
    signed_transaction as _signed,
)
from tests.solana_sandbox import (
    token_amount as _token_amount,
)
from tests.solana_sandbox import (
    token_payment as _token_payment,
)


@pytest.fixture(scope="module")
def live() -> Iterator[Sandbox]:
    yield from _serve(slot_ms=200)


@pytest.fixture(scope="module")
def frozen() -> Iterator[Sandbox]:
    yield from _serve(slot_ms=0)


# -- tests ----------------------------------------------------------------------------------


class TestBase58:
    def test_round_trips_keys_and_leading_zero_bytes(self) -> None:
        key = Keypair().pubkey()
        assert b58encode(bytes(key)) == str(key)
        assert b58decode(str(key)) == bytes(key)
        assert b58decode(b58encode(b"\0\0\x01\x02")) == b"\0\0\x01\x02"
        with pytest.raises(ValueError, match="invalid base58 character"):
            b58decode("0OIl")


class TestFixedMints:
    def test_mint_constants_are_the_keys_of_their_seeds(self) -> None:
        assert str(sandbox_keypair(USDC_MINT_SEED).pubkey()) == SANDBOX_USDC_MINT
        assert str(sandbox_keypair(USDC_2022_MINT_SEED).pubkey()) == SANDBOX_USDC_2022_MINT

    async def test_both_usdc_mints_exist_with_six_decimals_under_their_programs(
        self, live: Sandbox
    ) -> None:
        authority = str(sandbox_keypair(MINT_AUTHORITY_SEED).pubkey())
        async with AsyncClient(live.url, commitment=Confirmed) as client:
            for address, program in ((USDC, "spl-token"), (USDC_2022, "spl-token-2022")):
                reply = await client.get_account_info_json_parsed(address)
                assert reply.value is not None
                parsed = reply.value.data
                assert isinstance(parsed, ParsedAccount)
                assert parsed.program == program
                assert parsed.space == 82
                assert isinstance(parsed.parsed, dict)
                info = parsed.parsed["info"]
                assert isinstance(info, dict)
                assert info["decimals"] == 6
                assert info["mintAuthority"] == authority


class TestTokenTransfer:
    async def test_transfer_checked_creating_the_recipient_ata_lands_and_moves_tokens(
        self, live: Sandbox
    ) -> None:
        alice, bob = _funded_wallet(live), Keypair()
        async with AsyncClient(live.url, commitment=Confirmed) as client:
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            instructions = _compute_budget(100_000, 10_000) + _token_payment(
                alice, bob.pubkey(), USDC, TOKEN_PROGRAM, 2_500_000
            )
            tx = _signed(alice, instructions, blockhash)
            sent = await client.send_transaction(
                tx, opts=TxOpts(skip_confirmation=False, preflight_commitment=Confirmed)
            )
            statuses = await client.get_signature_statuses([sent.value])
            bob_account = get_associated_token_address(bob.pubkey(), USDC)
            bob_balance = await client.get_token_account_balance(bob_account)
            alice_account = get_associated_token_address(alice.pubkey(), USDC)
            alice_balance = await client.get_token_account_balance(alice_account)
            fetched = await client.get_transaction(
                sent.value, "jsonParsed", max_supported_transaction_version=0
            )
            as_json = await client.get_transaction(
                sent.value, "json", max_supported_transaction_version=0
            )
            as_wire = await client.get_transaction(
                sent.value, "base64", max_supported_transaction_version=0
            )
        status = statuses.value[0]
        assert status is not None
        assert status.err is None
        assert status.confirmation_status in (
            TransactionConfirmationStatus.Confirmed,
            TransactionConfirmationStatus.Finalized,
        )
        assert bob_balance.value.amount == "2500000"
        assert bob_balance.value.ui_amount_string == "2.5"
        assert alice_balance.value.amount == "7500000"
        transaction = fetched.value
        assert transaction is not None
        assert transaction.slot == status.slot
        meta = transaction.transaction.meta
        assert meta is not None
        assert meta.err is None
        # 5000 per signature + ceil(10_000 micro-lamports * 100_000 units / 1e6) = 1000
        assert meta.fee == 6_000
        assert meta.pre_balances[0] - meta.post_balances[0] == meta.fee + ATA_RENT
        pre = {
            entry.account_index: entry.ui_token_amount.amount
            for entry in meta.pre_token_balances or []
        }
        post = {
            entry.account_index: entry.ui_token_amount.amount
            for entry in meta.post_token_balances or []
        }
        assert sorted(pre.values()) == ["10000000"]
        assert sorted(post.values()) == ["2500000", "7500000"]
        assert as_json.value is not None
        assert as_json.value.transaction.transaction.signatures == [sent.value]
        assert as_wire.value is not None
        assert as_wire.value.transaction.transaction == tx

    async def test_resending_a_landed_transaction_is_refused_as_already_processed(
        self, frozen: Sandbox
    ) -> None:
        alice = _funded_wallet(frozen)
        tx = _signed(
            alice,
            _token_payment(alice, Keypair().pubkey(), USDC, TOKEN_PROGRAM, 1),
            _blockhash(frozen),
        )
        first = _send_raw(frozen, tx)
        again = _send_raw(frozen, tx)
        assert first["result"] == str(tx.signatures[0])
        assert again["error"]["code"] == -32002
        assert again["error"]["message"] == (
            "Transaction simulation failed: This transaction has already been processed"
        )
        assert again["error"]["data"]["err"] == "AlreadyProcessed"
        async with AsyncClient(frozen.url) as client:
            with pytest.raises(RPCException):
                await client.send_raw_transaction(
                    bytes(tx), opts=TxOpts(preflight_commitment=Processed)
                )

    async def test_token_2022_transfer_lands(self, frozen: Sandbox) -> None:
        alice, bob = _funded_wallet(frozen, USDC_2022, 5_000_000), Keypair()
        payment = _token_payment(alice, bob.pubkey(), USDC_2022, TOKEN_2022_PROGRAM, 1_250_000)
        reply = _send_raw(frozen, _signed(alice, payment, _blockhash(frozen)), encoding="base58")
        assert "result" in reply, reply
        assert _token_amount(frozen, bob.pubkey(), USDC_2022, TOKEN_2022_PROGRAM) == 1_250_000
        assert _token_amount(frozen, alice.pubkey(), USDC_2022, TOKEN_2022_PROGRAM) == 3_750_000
        bob_account = get_associated_token_address(bob.pubkey(), USDC_2022, TOKEN_2022_PROGRAM)
        parsed = frozen.rpc(
            "getAccountInfo",
            str(bob_account),
            {"encoding": "jsonParsed", "commitment": "processed"},
        )
        data = parsed["result"]["value"]["data"]
        assert data["program"] == "spl-token-2022"
        assert data["parsed"]["info"]["extensions"] == [{"extension": "immutableOwner"}]

    async def test_a_failing_transfer_is_refused_by_preflight_and_lands_without_it(
        self, frozen: Sandbox
    ) -> None:
        alice = _funded_wallet(frozen, amount=1_000)
        too_much = _token_payment(alice, Keypair().pubkey(), USDC, TOKEN_PROGRAM, 5_000)
        refused = _send_raw(frozen, _signed(alice, too_much, _blockhash(frozen)))
        assert refused["error"]["code"] == -32002
        assert refused["error"]["data"]["err"] == {"InstructionError": [1, {"Custom": 1}]}
        assert "custom program error: 0x1" in refused["error"]["message"]
        before = frozen.rpc("getBalance", str(alice.pubkey()), {"commitment": "processed"})
        landed = _send_raw(frozen, _signed(alice, too_much, _blockhash(frozen)), skipPreflight=True)
        status = frozen.rpc("getSignatureStatuses", [landed["result"]])["result"]["value"][0]
        after = frozen.rpc("getBalance", str(alice.pubkey()), {"commitment": "processed"})
        assert status["err"] == {"InstructionError": [1, {"Custom": 1}]}
        assert status["status"] == {"Err": {"InstructionError": [1, {"Custom": 1}]}}
        assert before["result"]["value"] - after["result"]["value"] == 5_000  # the fee only


class TestSignatures:
    def test_a_bad_signature_is_refused_before_simulation(self, frozen: Sandbox) -> None:
        alice = _funded_wallet(frozen)
        tx = _signed(
            alice,
            _token_payment(alice, Keypair().pubkey(), USDC, TOKEN_PROGRAM, 1),
            _blockhash(frozen),
        )
        forged = VersionedTransaction.populate(tx.message, [Keypair().sign_message(b"forged")])
        reply = _send_raw(frozen, forged)
        assert reply["error"] == {
            "code": -32003,
            "message": "Transaction signature verification failure",
        }

    def test_without_preflight_a_bad_signature_is_dropped_and_never_lands(
        self, frozen: Sandbox
    ) -> None:
        alice = _funded_wallet(frozen)
        tx = _signed(
            alice,
            _token_payment(alice, Keypair().pubkey(), USDC, TOKEN_PROGRAM, 1),
            _blockhash(frozen),
        )
        forged = VersionedTransaction.populate(tx.message, [Keypair().sign_message(b"forged")])
        reply = _send_raw(frozen, forged, skipPreflight=True)
        assert reply["result"] == str(forged.signatures[0])
        statuses = frozen.rpc(
            "getSignatureStatuses", [reply["result"]], {"searchTransactionHistory": True}
        )
        assert statuses["result"]["value"] == [None]


class TestSimulation:
    def test_replace_recent_blockhash_simulates_a_transaction_with_an_unknown_blockhash(
        self, frozen: Sandbox
    ) -> None:
        alice = _funded_wallet(frozen)
        tx = _signed(
            alice,
            _token_payment(alice, Keypair().pubkey(), USDC, TOKEN_PROGRAM, 1),
            Hash.new_unique(),
        )
        encoded = base64.b64encode(bytes(tx)).decode()
        stale = frozen.rpc("simulateTransaction", encoded, {"encoding": "base64"})
        replaced = frozen.rpc(
            "simulateTransaction",
            encoded,
            {"encoding": "base64", "replaceRecentBlockhash": True, "commitment": "processed"},
        )
        conflicting = frozen.rpc(
            "simulateTransaction",
            encoded,
            {"encoding": "base64", "replaceRecentBlockhash": True, "sigVerify": True},
        )
        assert stale["result"]["value"]["err"] == "BlockhashNotFound"
        value = replaced["result"]["value"]
        assert value["err"] is None
        assert value["unitsConsumed"] > 0
        assert value["replacementBlockhash"]["blockhash"] == str(_blockhash(frozen))
        assert conflicting["error"]["code"] == -32602

    def test_simulation_checks_signatures_only_when_asked_and_commits_nothing(
        self, frozen: Sandbox
    ) -> None:
        alice, bob = _funded_wallet(frozen), Keypair()
        tx = _signed(
            alice, _token_payment(alice, bob.pubkey(), USDC, TOKEN_PROGRAM, 7), _blockhash(frozen)
        )
        unsigned = VersionedTransaction.populate(tx.message, [Signature.default()])
        encoded = base64.b64encode(bytes(unsigned)).decode()
        lenient = frozen.rpc("simulateTransaction", encoded, {"encoding": "base64"})
        strict = frozen.rpc(
            "simulateTransaction", encoded, {"encoding": "base64", "sigVerify": True}
        )
        assert lenient["result"]["value"]["err"] is None
        assert strict["error"]["code"] == -32003
        bob_account = get_associated_token_address(bob.pubkey(), USDC)
        missing = frozen.rpc("getAccountInfo", str(bob_account), {"commitment": "processed"})
        assert missing["result"]["value"] is None


class TestBlockhashLifetime:
    def test_a_blockhash_is_valid_for_150_slots_then_sending_fails_with_blockhash_not_found(
        self, frozen: Sandbox
    ) -> None:
        alice = _funded_wallet(frozen)
        blockhash = _blockhash(frozen)
        tx = _signed(
            alice,
            [
                transfer(
                    TransferParams(
                        from_pubkey=alice.pubkey(), to_pubkey=Keypair().pubkey(), lamports=SOL // 10
                    )
                )
            ],
            blockhash,
        )
        processed = {"commitment": "processed"}
        frozen.advance(150)
        assert frozen.rpc("isBlockhashValid", str(blockhash), processed)["result"]["value"] is True
        frozen.advance(1)
        assert frozen.rpc("isBlockhashValid", str(blockhash), processed)["result"]["value"] is False
        reply = _send_raw(frozen, tx)
        assert reply["error"]["code"] == -32002
        assert reply["error"]["message"] == "Transaction simulation failed: Blockhash not found"
        assert reply["error"]["data"]["err"] == "BlockhashNotFound"
        dropped = _send_raw(frozen, tx, skipPreflight=True)
        status = frozen.rpc(
            "getSignatureStatuses", [dropped["result"]], {"searchTransactionHistory": True}
        )
        assert status["result"]["value"] == [None]

    def test_finalized_reads_see_a_blockhash_32_slots_later(self, frozen: Sandbox) -> None:
        frozen.advance(40)
        latest = frozen.rpc("getLatestBlockhash", {"commitment": "processed"})["result"]
        finalized = frozen.rpc("getLatestBlockhash")["result"]
        assert finalized["context"]["slot"] == latest["context"]["slot"] - 32
        assert finalized["value"]["lastValidBlockHeight"] == finalized["context"]["slot"] + 150
        newest = latest["value"]["blockhash"]
        # The finalized bank has not seen the newest blockhash yet, as on a cluster.
        assert frozen.rpc("isBlockhashValid", newest)["result"]["value"] is False
        assert (
            frozen.rpc("isBlockhashValid", newest, {"commitment": "processed"})["result"]["value"]
            is True
        )


class TestConfirmation:
    def test_a_transaction_goes_from_processed_to_confirmed_to_finalized(
        self, frozen: Sandbox
    ) -> None:
        signature = frozen.fund(Keypair().pubkey(), lamports=SOL)["signature"]

        def status() -> dict[str, Any]:
            value = frozen.rpc("getSignatureStatuses", [signature])["result"]["value"][0]
            assert isinstance(value, dict)
            return value

        def fetched(commitment: str) -> Any:
            config = {"commitment": commitment, "maxSupportedTransactionVersion": 0}
            return frozen.rpc("getTransaction", signature, config)["result"]

        assert status()["confirmationStatus"] == "processed"
        assert status()["confirmations"] == 0
        assert fetched("confirmed") is None
        frozen.advance(1)
        assert status()["confirmationStatus"] == "confirmed"
        assert status()["confirmations"] == 1
        assert fetched("confirmed") is not None
        assert fetched("finalized") is None
        frozen.advance(31)
        assert status()["confirmationStatus"] == "finalized"
        assert status()["confirmations"] is None
        assert fetched("finalized")["slot"] == status()["slot"]

    def test_old_statuses_need_search_transaction_history(self, frozen: Sandbox) -> None:
        signature = frozen.fund(Keypair().pubkey(), lamports=SOL)["signature"]
        frozen.advance(301)
        recent = frozen.rpc("getSignatureStatuses", [signature])["result"]["value"]
        history = frozen.rpc(
            "getSignatureStatuses", [signature], {"searchTransactionHistory": True}
        )
        assert recent == [None]
        assert history["result"]["value"][0]["confirmationStatus"] == "finalized"

    def test_get_transaction_needs_a_max_version_for_v0_and_refuses_processed(
        self, frozen: Sandbox
    ) -> None:
        signature = frozen.fund(Keypair().pubkey(), lamports=SOL)["signature"]
        frozen.advance(1)
        without_version = frozen.rpc("getTransaction", signature, {"commitment": "confirmed"})
        processed = frozen.rpc("getTransaction", signature, {"commitment": "processed"})
        assert without_version["error"]["code"] == -32015
        assert processed["error"]["code"] == -32602


class TestJsonRpc:
    def test_a_batch_is_answered_in_order_with_errors_in_place(self, frozen: Sandbox) -> None:
        batch = [
            {"jsonrpc": "2.0", "id": "a", "method": "getHealth"},
            {"jsonrpc": "2.0", "id": "b", "method": "getNoSuchThing", "params": []},
            {"jsonrpc": "2.0", "method": "getSlot"},  # a notification: no reply
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "getSlot",
                "params": [{"commitment": "processed"}],
            },
            {"jsonrpc": "2.0", "id": 7, "method": "getBalance", "params": ["not-a-key"]},
        ]
        replies = httpx.post(frozen.url, json=batch, timeout=10).json()
        assert [reply["id"] for reply in replies] == ["a", "b", 5, 7]
        assert replies[0]["result"] == "ok"
        assert replies[1]["error"]["code"] == -32601
        assert isinstance(replies[2]["result"], int)
        assert replies[3]["error"]["code"] == -32602

    def test_malformed_json_is_a_parse_error(self, frozen: Sandbox) -> None:
        reply = httpx.post(frozen.url, content=b'{"jsonrpc": "2.0", "id": 1,', timeout=10)
        assert reply.status_code == 200
        assert reply.json() == {
            "jsonrpc": "2.0",
            "error": {"code": -32700, "message": "Parse error"},
            "id": None,
        }

    def test_an_unknown_method_is_method_not_found(self, frozen: Sandbox) -> None:
        assert frozen.rpc("getBlockProduction")["error"] == {
            "code": -32601,
            "message": "Method not found",
        }

    def test_a_non_request_is_an_invalid_request(self, frozen: Sandbox) -> None:
        reply = httpx.post(
            frozen.url, json={"jsonrpc": "1.0", "id": 3, "method": "getSlot"}, timeout=10
        )
        assert reply.json()["error"]["code"] == -32600

    async def test_cluster_methods_answer_in_the_clients_shapes(self, live: Sandbox) -> None:
        async with AsyncClient(live.url, commitment=Confirmed) as client:
            assert await client.is_connected()
            version = await client.get_version()
            rent = await client.get_minimum_balance_for_rent_exemption(165)
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            payer = Keypair()
            message = MessageV0.try_compile(
                payer.pubkey(), _compute_budget(20_000, 1), [], blockhash
            )
            fee = await client.get_fee_for_message(message)
            slot = (await client.get_slot()).value
            epoch = (await client.get_epoch_info()).value
            supply = (await client.get_token_supply(USDC_2022)).value
            mints = (await client.get_multiple_accounts([USDC, USDC_2022, payer.pubkey()])).value
        assert version.value.solana_core
        assert epoch.absolute_slot >= slot
        assert supply.decimals == 6
        assert [account.owner if account else None for account in mints] == [
            TOKEN_PROGRAM,
            TOKEN_2022_PROGRAM,
            None,
        ]
        assert rent.value == ATA_RENT
        assert fee.value == 5_001  # one signature, plus 20_000 units at 1 micro-lamport, rounded up
        unknown = MessageV0.try_compile(payer.pubkey(), [], [], Hash.new_unique())
        encoded = base64.b64encode(to_bytes_versioned(unknown)).decode()
        assert live.rpc("getFeeForMessage", encoded)["result"]["value"] is None


class TestFaucet:
    async def test_request_airdrop_lands_like_any_transaction(self, live: Sandbox) -> None:
        wallet = Keypair()
        async with AsyncClient(live.url, commitment=Confirmed) as client:
            airdrop = await client.request_airdrop(wallet.pubkey(), 3 * SOL)
            await client.confirm_transaction(airdrop.value, Confirmed, sleep_seconds=0.1)
            balance = await client.get_balance(wallet.pubkey())
        assert balance.value == 3 * SOL

    def test_a_new_mint_can_fund_wallets(self, frozen: Sandbox) -> None:
        created = httpx.post(
            f"{frozen.url}/faucet/mints",
            json={"decimals": 2, "program": "spl-token-2022", "label": "KES (sandbox)"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        mint = Pubkey.from_string(created.json()["address"])
        owner = Keypair().pubkey()
        funding = frozen.fund(owner, mint=mint, amount=12_345)
        assert funding["token_program"] == "spl-token-2022"
        assert _token_amount(frozen, owner, mint, TOKEN_2022_PROGRAM) == 12_345
        state = httpx.get(f"{frozen.url}/faucet/state", timeout=10).json()
        assert {entry["address"]: entry["supply"] for entry in state["mints"]}[str(mint)] == 12_345

    def test_unknown_mints_and_bad_owners_are_refused_as_problems(self, frozen: Sandbox) -> None:
        unknown = httpx.post(
            f"{frozen.url}/faucet/fund",
            json={"owner": str(Keypair().pubkey()), "mint": str(Keypair().pubkey()), "amount": 1},
            timeout=10,
        )
        bad_owner = httpx.post(
            f"{frozen.url}/faucet/fund", json={"owner": "nope", "lamports": 1}, timeout=10
        )
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
        assert bad_owner.status_code == 422

    def test_demo_wallet_prints_a_funded_keypair(
        self, live: Sandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert sandbox_cli(["demo-wallet", "--url", live.url, "--json"]) == 0
        wallet = json.loads(capsys.readouterr().out)
        keypair = Keypair.from_base58_string(wallet["secret_key_base58"])
        assert str(keypair.pubkey()) == wallet["address"]
        assert _token_amount(live, keypair.pubkey(), USDC, TOKEN_PROGRAM) == wallet["amount"]


class TestX402:
    def test_the_reference_x402_client_and_facilitator_settle_a_payment(
        self, live: Sandbox
    ) -> None:
        payer, merchant, fee_payer = Keypair(), Keypair(), Keypair()
        live.fund(payer.pubkey(), mint=USDC, amount=5_000_000)
        live.fund(merchant.pubkey(), mint=USDC)  # the payee's token account must exist
        live.fund(fee_payer.pubkey(), lamports=SOL)
        requirements = PaymentRequirements(
            scheme="exact",
            network=DEVNET,
            asset=SANDBOX_USDC_MINT,
            amount="1250000",
            pay_to=str(merchant.pubkey()),
            max_timeout_seconds=60,
            extra={"feePayer": str(fee_payer.pubkey())},
        )
        client = ExactSvmClientScheme(KeypairSigner(payer), rpc_url=live.url)
        payload = PaymentPayload(
            payload=client.create_payment_payload(requirements), accepted=requirements
        )
        facilitator = ExactSvmFacilitatorScheme(
            FacilitatorKeypairSigner(fee_payer, rpc_url=live.url)
        )
        verified = facilitator.verify(payload, requirements)
        assert verified.is_valid, verified.invalid_message
        settled = facilitator.settle(payload, requirements)
        assert settled.success, settled.error_reason
        assert _token_amount(live, merchant.pubkey(), USDC, TOKEN_PROGRAM) == 1_250_000
        assert _token_amount(live, payer.pubkey(), USDC, TOKEN_PROGRAM) == 3_750_000
        again = facilitator.settle(payload, requirements)
        assert not again.success
        # Refused by the chain (the identical transaction was already processed), not a cache.
        assert again.error_reason == "transaction_simulation_failed", again


class TestKassaRun:
    def test_kassa_run_points_solana_rpc_url_at_the_sandbox_with_the_port_offset(
        self, tmp_path: Path
    ) -> None:
        (entry,) = [sandbox for sandbox in SANDBOXES if sandbox.name == "solana_rpc"]
        assert (entry.module, entry.port, entry.url_env) == (
            "sandboxes.solana_rpc",
            SANDBOX_BASE_PORT,
            "SOLANA_RPC_URL",
        )
        env = prepare_environment({"KASSA_PORT_OFFSET": "100"}, tmp_path)
        assert env["SOLANA_RPC_URL"] == "http://127.0.0.1:8201"
        chosen = prepare_environment({"SOLANA_RPC_URL": "https://api.devnet.solana.com"}, tmp_path)
        assert chosen["SOLANA_RPC_URL"] == "https://api.devnet.solana.com"
