"""Services admit only callers the gateway vouched for, and routes admit only whom they name."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.identity import (
    AssertionSigner,
    AssertionVerifier,
    Caller,
    InvalidAssertion,
    generate_signing_key,
    load_public_keys,
)
from tests.conftest import assertion_header
from tests.shared.conftest import Kit

CALLER = Caller(key_id="k1", owner="acme", scopes=frozenset({"read"}), request_id="r1")


class TestAssertionAtTheService:
    async def test_valid_assertion_is_accepted_and_its_caller_seen(self, kit: Kit) -> None:
        reply = await kit.client.get("/whoami")
        assert reply.status_code == 200
        assert reply.json() == {"owner": "acme", "scopes": ["read", "write"], "key_id": "key-test"}

    async def test_missing_assertion_is_refused_with_401(self, kit: Kit) -> None:
        reply = await kit.client.get("/whoami", headers={"X-Kassa-Caller": ""})
        assert reply.status_code == 401
        assert reply.json()["type"] == "urn:kassa:problem:invalid-caller-assertion"

    async def test_expired_assertion_is_refused(self, kit: Kit, signer: AssertionSigner) -> None:
        old = signer.sign(CALLER, audience="kit", now=time.time() - 120)
        reply = await kit.client.get("/whoami", headers={"X-Kassa-Caller": old})
        assert reply.status_code == 401
        assert "expired" in reply.json()["detail"]

    async def test_assertion_forged_with_another_key_is_refused(self, kit: Kit) -> None:
        forger = AssertionSigner(generate_signing_key()[0])
        reply = await kit.client.get(
            "/whoami", headers={"X-Kassa-Caller": forger.sign(CALLER, audience="kit")}
        )
        assert reply.status_code == 401
        assert "unknown key" in reply.json()["detail"]

    async def test_assertion_for_another_service_is_refused(
        self, kit: Kit, signer: AssertionSigner
    ) -> None:
        token = signer.sign(CALLER, audience="ledger_fee")
        reply = await kit.client.get("/whoami", headers={"X-Kassa-Caller": token})
        assert reply.status_code == 401

    async def test_tampered_claims_are_refused(self, kit: Kit, signer: AssertionSigner) -> None:
        header, _payload, signature = signer.sign(CALLER, audience="kit").split(".")
        admin_payload = jwt.utils.base64url_encode(
            b'{"iss":"kassa-gateway","aud":"kit","sub":"k1","owner":"acme","scp":["admin"],'
            b'"iat":%d,"exp":%d}' % (int(time.time()), int(time.time()) + 30)
        ).decode()
        reply = await kit.client.get(
            "/whoami", headers={"X-Kassa-Caller": f"{header}.{admin_payload}.{signature}"}
        )
        assert reply.status_code == 401

    async def test_unsigned_token_is_refused(self, kit: Kit) -> None:
        token = jwt.encode(
            {"iss": "kassa-gateway", "aud": "kit", "sub": "x", "iat": 0, "exp": 2**33},
            key="",
            algorithm="none",
        )
        reply = await kit.client.get("/whoami", headers={"X-Kassa-Caller": token})
        assert reply.status_code == 401

    @pytest.mark.parametrize("path", ["/health", "/metrics"])
    async def test_operational_paths_need_no_assertion(self, kit: Kit, path: str) -> None:
        reply = await kit.client.get(path, headers={"X-Kassa-Caller": ""})
        assert reply.status_code == 200


class TestRouteAdmission:
    async def test_scope_route_refuses_a_caller_without_it(self, kit: Kit) -> None:
        reply = await kit.client.get("/admin-only")
        assert reply.status_code == 403
        assert reply.json()["type"] == "urn:kassa:problem:caller-not-allowed"
        assert "admin" in reply.json()["detail"]

    async def test_scope_route_admits_a_caller_with_it(
        self, kit: Kit, signer: AssertionSigner
    ) -> None:
        headers = assertion_header(signer, "kit", scopes=frozenset({"admin"}))
        assert (await kit.client.get("/admin-only", headers=headers)).status_code == 200

    async def test_named_callers_only_admit_those_services(
        self, kit: Kit, signer: AssertionSigner
    ) -> None:
        custody = assertion_header(signer, "kit", service="custody")
        facilitator = assertion_header(signer, "kit", service="facilitator")
        person = assertion_header(signer, "kit")
        assert (await kit.client.get("/ledger-writers", headers=custody)).json() == {
            "service": "custody"
        }
        assert (await kit.client.get("/ledger-writers", headers=facilitator)).status_code == 403
        assert (await kit.client.get("/ledger-writers", headers=person)).status_code == 403


class TestSignerAndVerifier:
    def test_lifetime_over_sixty_seconds_is_refused_at_signing(self) -> None:
        with pytest.raises(ValueError, match=r"1\.\.60"):
            AssertionSigner(generate_signing_key()[0], ttl_s=61)

    def test_verifier_accepts_any_key_of_a_rotation(self) -> None:
        old_private, old_public = generate_signing_key()
        new_private, new_public = generate_signing_key()
        verifier = AssertionVerifier(load_public_keys(old_public + new_public), audience="kit")
        for private in (old_private, new_private):
            caller = verifier.verify(AssertionSigner(private).sign(CALLER, audience="kit"))
            assert caller.owner == "acme"
            assert caller.request_id == "r1"

    def test_verifier_without_keys_refuses_to_exist(self) -> None:
        with pytest.raises(ValueError, match="IDENTITY_PUBLIC_KEYS"):
            AssertionVerifier({}, audience="kit")

    def test_garbage_is_refused_not_crashed_on(self) -> None:
        _, public = generate_signing_key()
        verifier = AssertionVerifier(load_public_keys(public), audience="kit")
        for token in ("not-a-jwt", "a.b.c", "...", "e30.e30.e30"):
            with pytest.raises(InvalidAssertion):
                verifier.verify(token)

    def test_scope_covers_per_service_scopes_and_admin_covers_all(self) -> None:
        ledger = Caller(key_id="k", owner="o", scopes=frozenset({"ledger"}))
        admin = Caller(key_id="k", owner="o", scopes=frozenset({"admin"}))
        reader = Caller(key_id="k", owner="o", scopes=frozenset({"read"}))
        assert ledger.has_scope("ledger:write")
        assert admin.has_scope("facilitator:settle")
        assert not reader.has_scope("ledger:write")
