"""/v1/admin/api-keys through a real gateway: create, list, get, rotate, revoke; the key cache."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from sqlalchemy import func, select

from gateway.admin import admin_caller
from gateway.app import MIGRATIONS as GATEWAY_MIGRATIONS
from gateway.app import create_app as create_gateway
from gateway.authentication import InsufficientScope, InvalidApiKey
from gateway.config import GatewaySettings
from gateway.key_cache import DISCONNECTED_TTL_S
from gateway.models import ApiKey
from gateway.repository import ApiKeyRepository
from shared.api_key_format import generate_api_key, hash_api_key, key_environment
from shared.db import Database
from shared.identity import Caller
from shared.migrations import upgrade_to_head
from shared.settings import DEVELOPMENT_SECRET_PREFIX
from tests.conftest import DatabaseFactory, running

SECRET = DEVELOPMENT_SECRET_PREFIX + "admin-api-test"
KEYS = "/v1/admin/api-keys"
DEFAULT_OVERLAP_S = 3600


@dataclass
class Gateway:
    client: httpx.AsyncClient
    app: FastAPI
    admin_key: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    async def create(self, **fields: Any) -> dict[str, Any]:
        """A new key through the API; the reply's JSON (record and key)."""
        body = {"owner": unique_owner(), "name": "test key", "scopes": ["read"], **fields}
        reply = await self.client.post(KEYS, json=body, headers=self.admin)
        assert reply.status_code == 201, reply.text
        created: dict[str, Any] = reply.json()
        return created

    @property
    def database(self) -> Database:
        database: Database = self.app.state.runtime.database
        return database

    async def row(self, key_id: str) -> ApiKey:
        async with self.database.session() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.id == key_id))
        assert row is not None
        return row

    async def count_owned(self, owner: str) -> int:
        async with self.database.session() as session:
            count = await session.scalar(
                select(func.count()).select_from(ApiKey).where(ApiKey.owner == owner)
            )
        return int(count or 0)


def unique_owner() -> str:
    return f"acme-{secrets.token_hex(4)}"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def gateway_settings(
    url: str, signing_key: str, admin_key: str, redis_url: str | None = None
) -> GatewaySettings:
    return GatewaySettings(
        database_url=url,
        redis_url=redis_url,
        identity_signing_key=signing_key,
        api_key_secret=SECRET,
        bootstrap_admin_key=admin_key,
        upstreams={},
        key_rotation_overlap_s=DEFAULT_OVERLAP_S,
    )


@pytest_asyncio.fixture(scope="module")
async def gateway(
    databases: DatabaseFactory, signing_key_pair: tuple[str, str]
) -> AsyncIterator[Gateway]:
    """One gateway on a migrated database; tests keep apart by using their own owners."""
    url = await databases.create("admin_api")
    await upgrade_to_head(GATEWAY_MIGRATIONS, url)
    admin_key = generate_api_key("test")
    app = create_gateway(gateway_settings(url, signing_key_pair[0], admin_key))
    async with running(app, base_url="http://gateway") as client:
        yield Gateway(client=client, app=app, admin_key=admin_key)


def field_errors(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    return [error["field"] for error in reply.json()["errors"]]


class TestCreate:
    async def test_the_key_is_shown_once_and_only_its_hash_is_stored(
        self, gateway: Gateway
    ) -> None:
        created = await gateway.create(scopes=["ledger:write", "read"], environment="test")
        key, record = created["key"], created["api_key"]
        assert key_environment(key) == "test"
        assert record["display_prefix"] == key[:13]
        assert record["scopes"] == ["ledger:write", "read"]
        assert record["state"] == "active"
        row = await gateway.row(record["id"])
        assert row.key_hash == hash_api_key(key, SECRET.encode())
        stored = [str(getattr(row, column.key)) for column in ApiKey.__table__.columns]
        assert not any(key in value for value in stored)

    async def test_the_key_never_appears_in_get_or_list(self, gateway: Gateway) -> None:
        created = await gateway.create()
        key_id, owner = created["api_key"]["id"], created["api_key"]["owner"]
        got = await gateway.client.get(f"{KEYS}/{key_id}", headers=gateway.admin)
        listed = await gateway.client.get(KEYS, params={"owner": owner}, headers=gateway.admin)
        assert got.status_code == listed.status_code == 200
        assert got.json() == listed.json()["items"][0]
        assert "key" not in got.json()
        assert created["key"] not in got.text + listed.text

    async def test_the_reply_may_not_be_cached(self, gateway: Gateway) -> None:
        reply = await gateway.client.post(
            KEYS,
            json={"owner": unique_owner(), "name": "n", "scopes": ["read"]},
            headers=gateway.admin,
        )
        assert reply.headers["cache-control"] == "no-store"

    async def test_a_created_admin_key_works_at_once(self, gateway: Gateway) -> None:
        created = await gateway.create(scopes=["admin"])
        reply = await gateway.client.get(KEYS, params={"limit": 1}, headers=bearer(created["key"]))
        assert reply.status_code == 200

    async def test_idempotency_key_replays_the_same_key_and_makes_one_row(
        self, gateway: Gateway
    ) -> None:
        owner = unique_owner()
        body = {"owner": owner, "name": "retry", "scopes": ["write"]}
        headers = {**gateway.admin, "Idempotency-Key": f"create-{owner}"}
        first = await gateway.client.post(KEYS, json=body, headers=headers)
        second = await gateway.client.post(KEYS, json=body, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.headers["idempotent-replayed"] == "true"
        assert second.json()["key"] == first.json()["key"]
        assert await gateway.count_owned(owner) == 1

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"scopes": ["read", "superuser"]}, "body.scopes.1"),
            ({"scopes": ["bank:read"]}, "body.scopes.0"),
            ({"scopes": ["ledger:Write"]}, "body.scopes.0"),
            ({"scopes": []}, "body.scopes"),
            ({"environment": "prod"}, "body.environment"),
            ({"expires_at": "2020-01-01T00:00:00Z"}, "body.expires_at"),
            ({"expires_at": "2099-01-01T00:00:00"}, "body.expires_at"),
            ({"owner": "  "}, "body.owner"),
            ({"owner": "x" * 129}, "body.owner"),
            ({"owner": "bootstrap"}, "body.owner"),
            ({"name": ""}, "body.name"),
            ({"rate_limit_tier": "Gold!"}, "body.rate_limit_tier"),
            ({"service": "bank"}, "body.service"),
            ({"scope": ["read"]}, "body.scope"),
        ],
    )
    async def test_invalid_input_is_422_naming_the_field(
        self, gateway: Gateway, change: dict[str, Any], field: str
    ) -> None:
        body = {"owner": unique_owner(), "name": "n", "scopes": ["read"], **change}
        reply = await gateway.client.post(KEYS, json=body, headers=gateway.admin)
        assert field in field_errors(reply)

    async def test_an_unknown_scope_is_explained(self, gateway: Gateway) -> None:
        body = {"owner": unique_owner(), "name": "n", "scopes": ["bank:read"]}
        reply = await gateway.client.post(KEYS, json=body, headers=gateway.admin)
        message = reply.json()["errors"][0]["message"]
        assert "unknown scope 'bank:read'" in message
        assert "facilitator, custody, fiscal, ledger" in message


class TestAuthorisation:
    async def test_no_key_is_401(self, gateway: Gateway) -> None:
        reply = await gateway.client.get(KEYS)
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"].startswith("Bearer")

    async def test_a_key_without_admin_scope_is_403(self, gateway: Gateway) -> None:
        reader = await gateway.create(scopes=["read", "write", "ledger:write"])
        for reply in (
            await gateway.client.get(KEYS, headers=bearer(reader["key"])),
            await gateway.client.post(
                KEYS,
                json={"owner": unique_owner(), "name": "n", "scopes": ["admin"]},
                headers=bearer(reader["key"]),
            ),
        ):
            assert reply.status_code == 403
            assert reply.headers["content-type"] == "application/problem+json"
            assert "admin" in reply.json()["detail"]

    def test_the_router_refuses_a_request_the_front_door_did_not_authenticate(self) -> None:
        with pytest.raises(InvalidApiKey):
            admin_caller(Request({"type": "http", "state": {}}))
        reader = Caller(key_id="k", owner="o", scopes=frozenset({"read"}))
        with pytest.raises(InsufficientScope):
            admin_caller(Request({"type": "http", "state": {"caller": reader}}))


class TestListAndGet:
    async def test_pages_cover_every_key_once_newest_first(self, gateway: Gateway) -> None:
        owner = unique_owner()
        ids = [(await gateway.create(owner=owner))["api_key"]["id"] for _ in range(7)]
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"owner": owner, "limit": 3}
            if cursor:
                params["cursor"] = cursor
            reply = await gateway.client.get(KEYS, params=params, headers=gateway.admin)
            assert reply.status_code == 200
            seen += [item["id"] for item in reply.json()["items"]]
            cursor = reply.json()["next_cursor"]
            pages += 1
            if cursor is None:
                break
        assert pages == 3
        assert sorted(seen) == sorted(ids)  # every key once
        assert seen == sorted(ids, reverse=True)  # newest first: ids are time-ordered

    async def test_a_full_last_page_says_there_is_no_next(self, gateway: Gateway) -> None:
        owner = unique_owner()
        for _ in range(2):
            await gateway.create(owner=owner)
        reply = await gateway.client.get(
            KEYS, params={"owner": owner, "limit": 2}, headers=gateway.admin
        )
        assert len(reply.json()["items"]) == 2
        assert reply.json()["next_cursor"] is None

    async def test_filters_by_owner_and_state(self, gateway: Gateway) -> None:
        owner = unique_owner()
        active = (await gateway.create(owner=owner))["api_key"]["id"]
        revoked = (await gateway.create(owner=owner))["api_key"]["id"]
        rotated = (await gateway.create(owner=owner))["api_key"]["id"]
        await gateway.create()  # another owner's key
        await gateway.client.post(f"{KEYS}/{revoked}/revoke", headers=gateway.admin)
        rotation = await gateway.client.post(
            f"{KEYS}/{rotated}/rotate", json={"overlap_s": 0}, headers=gateway.admin
        )
        successor = rotation.json()["api_key"]["id"]

        async def listed(**params: str) -> set[str]:
            reply = await gateway.client.get(
                KEYS, params={"owner": owner, **params}, headers=gateway.admin
            )
            assert reply.status_code == 200
            return {item["id"] for item in reply.json()["items"]}

        assert await listed() == {active, revoked, rotated, successor}
        assert await listed(state="active") == {active, successor}
        assert await listed(state="revoked") == {revoked}
        assert await listed(state="expired") == {rotated}

    async def test_the_record_shows_when_the_key_was_last_used(self, gateway: Gateway) -> None:
        key_id = (await gateway.create())["api_key"]["id"]
        used = datetime.now(UTC).replace(microsecond=0)
        async with gateway.database.session() as session, session.begin():
            repository = ApiKeyRepository(session)
            await repository.touch_last_used({key_id: used})
            await repository.touch_last_used({key_id: used - timedelta(minutes=5)})  # older
        reply = await gateway.client.get(f"{KEYS}/{key_id}", headers=gateway.admin)
        assert datetime.fromisoformat(reply.json()["last_used_at"]) == used

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"limit": "0"}, "query.limit"),
            ({"limit": "201"}, "query.limit"),
            ({"state": "dormant"}, "query.state"),
            ({"cursor": "not-a-cursor"}, "query.cursor"),
        ],
    )
    async def test_bad_list_parameters_are_422_naming_them(
        self, gateway: Gateway, params: dict[str, str], field: str
    ) -> None:
        reply = await gateway.client.get(KEYS, params=params, headers=gateway.admin)
        assert field_errors(reply) == [field]

    async def test_an_unknown_id_is_404_problem(self, gateway: Gateway) -> None:
        unknown = "01900000-0000-7000-8000-000000000000"
        for reply in (
            await gateway.client.get(f"{KEYS}/{unknown}", headers=gateway.admin),
            await gateway.client.post(f"{KEYS}/{unknown}/rotate", headers=gateway.admin),
            await gateway.client.post(f"{KEYS}/{unknown}/revoke", headers=gateway.admin),
        ):
            assert reply.status_code == 404
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.json()["type"] == "urn:kassa:problem:api-key-not-found"
            assert unknown in reply.json()["detail"]


class TestRotate:
    async def test_new_key_works_at_once_and_old_one_until_the_overlap_ends(
        self, gateway: Gateway
    ) -> None:
        old = await gateway.create(scopes=["admin"])
        await gateway.client.get(KEYS, params={"limit": 1}, headers=bearer(old["key"]))  # cached
        reply = await gateway.client.post(
            f"{KEYS}/{old['api_key']['id']}/rotate", json={"overlap_s": 1}, headers=gateway.admin
        )
        assert reply.status_code == 201
        new_key = reply.json()["key"]
        assert new_key != old["key"]
        for key in (new_key, old["key"]):
            ok = await gateway.client.get(KEYS, params={"limit": 1}, headers=bearer(key))
            assert ok.status_code == 200
        await asyncio.sleep(1.2)
        expired = await gateway.client.get(KEYS, headers=bearer(old["key"]))
        assert expired.status_code == 401
        assert expired.json()["detail"] == "The API key has expired."
        still = await gateway.client.get(KEYS, params={"limit": 1}, headers=bearer(new_key))
        assert still.status_code == 200

    async def test_the_successor_copies_the_key_and_the_old_record_points_to_it(
        self, gateway: Gateway
    ) -> None:
        old = await gateway.create(
            scopes=["custody:transfer", "read"],
            service="custody",
            rate_limit_tier="gold",
            environment="test",
        )
        reply = await gateway.client.post(
            f"{KEYS}/{old['api_key']['id']}/rotate", json={"overlap_s": 0}, headers=gateway.admin
        )
        new, previous = reply.json()["api_key"], reply.json()["previous"]
        assert key_environment(reply.json()["key"]) == "test"
        for field in ("owner", "name", "environment", "scopes", "service", "rate_limit_tier"):
            assert new[field] == old["api_key"][field]
        assert new["expires_at"] is None
        assert previous["replaced_by"] == new["id"]
        assert previous["state"] == "expired"
        assert reply.headers["cache-control"] == "no-store"

    async def test_without_a_body_the_configured_overlap_applies(self, gateway: Gateway) -> None:
        old = await gateway.create()
        before = datetime.now(UTC)
        reply = await gateway.client.post(
            f"{KEYS}/{old['api_key']['id']}/rotate", headers=gateway.admin
        )
        assert reply.status_code == 201
        expires = datetime.fromisoformat(reply.json()["previous"]["expires_at"])
        assert timedelta(0) <= expires - before - timedelta(seconds=DEFAULT_OVERLAP_S)
        assert expires - before - timedelta(seconds=DEFAULT_OVERLAP_S) < timedelta(seconds=5)

    async def test_an_earlier_expiry_is_kept_and_the_lifetime_carries_over(
        self, gateway: Gateway
    ) -> None:
        soon = datetime.now(UTC) + timedelta(minutes=10)
        old = await gateway.create(expires_at=soon.isoformat())
        reply = await gateway.client.post(
            f"{KEYS}/{old['api_key']['id']}/rotate",
            json={"overlap_s": 86_400},
            headers=gateway.admin,
        )
        previous, new = reply.json()["previous"], reply.json()["api_key"]
        assert datetime.fromisoformat(previous["expires_at"]) == soon
        lifetime = datetime.fromisoformat(new["expires_at"]) - datetime.fromisoformat(
            new["created_at"]
        )
        assert abs(lifetime - timedelta(minutes=10)) < timedelta(seconds=5)

    @pytest.mark.parametrize("action", ["revoke", "rotate", "expire"])
    async def test_a_revoked_rotated_or_expired_key_is_409(
        self, gateway: Gateway, action: str
    ) -> None:
        key_id = (await gateway.create())["api_key"]["id"]
        if action == "revoke":
            await gateway.client.post(f"{KEYS}/{key_id}/revoke", headers=gateway.admin)
        else:
            overlap = 0 if action == "expire" else 60
            await gateway.client.post(
                f"{KEYS}/{key_id}/rotate", json={"overlap_s": overlap}, headers=gateway.admin
            )
        reply = await gateway.client.post(f"{KEYS}/{key_id}/rotate", headers=gateway.admin)
        assert reply.status_code == 409
        assert reply.json()["type"] == "urn:kassa:problem:api-key-not-rotatable"

    async def test_a_bad_overlap_is_422(self, gateway: Gateway) -> None:
        key_id = (await gateway.create())["api_key"]["id"]
        reply = await gateway.client.post(
            f"{KEYS}/{key_id}/rotate", json={"overlap_s": -1}, headers=gateway.admin
        )
        assert field_errors(reply) == ["body.overlap_s"]

    async def test_concurrent_rotations_make_exactly_one_successor(self, gateway: Gateway) -> None:
        created = await gateway.create()
        owner, key_id = created["api_key"]["owner"], created["api_key"]["id"]
        replies = await asyncio.gather(
            *(
                gateway.client.post(
                    f"{KEYS}/{key_id}/rotate", json={"overlap_s": 60}, headers=gateway.admin
                )
                for _ in range(10)
            )
        )
        statuses = sorted(reply.status_code for reply in replies)
        assert statuses == [201] + [409] * 9
        assert await gateway.count_owned(owner) == 2
        winner = next(reply for reply in replies if reply.status_code == 201)
        assert (await gateway.row(key_id)).replaced_by == winner.json()["api_key"]["id"]


class TestRevoke:
    async def test_revocation_takes_effect_at_once_despite_the_cache(
        self, gateway: Gateway
    ) -> None:
        reader = await gateway.create(scopes=["read"])
        # Authenticated (so cached), refused only for its scope.
        before = await gateway.client.get(KEYS, headers=bearer(reader["key"]))
        assert before.status_code == 403
        revoked = await gateway.client.post(
            f"{KEYS}/{reader['api_key']['id']}/revoke", headers=gateway.admin
        )
        assert revoked.status_code == 200
        after = await gateway.client.get(KEYS, headers=bearer(reader["key"]))
        assert after.status_code == 401
        assert after.json()["detail"] == "The API key has been revoked."

    async def test_an_admin_key_revoked_is_refused_on_its_next_request(
        self, gateway: Gateway
    ) -> None:
        admin = await gateway.create(scopes=["admin"])
        key_id = admin["api_key"]["id"]
        own = await gateway.client.post(f"{KEYS}/{key_id}/revoke", headers=bearer(admin["key"]))
        assert own.status_code == 200  # a key may revoke itself
        after = await gateway.client.get(f"{KEYS}/{key_id}", headers=bearer(admin["key"]))
        assert after.status_code == 401
        assert "revoked" in after.json()["detail"]

    async def test_revoking_twice_keeps_the_first_revocation(self, gateway: Gateway) -> None:
        key_id = (await gateway.create())["api_key"]["id"]
        first = await gateway.client.post(f"{KEYS}/{key_id}/revoke", headers=gateway.admin)
        await asyncio.sleep(0.01)
        second = await gateway.client.post(f"{KEYS}/{key_id}/revoke", headers=gateway.admin)
        assert first.status_code == second.status_code == 200
        assert first.json()["state"] == "revoked"
        assert second.json()["revoked_at"] == first.json()["revoked_at"]


class TestAcrossGateways:
    async def test_a_revocation_reaches_another_gateway_through_redis(
        self,
        databases: DatabaseFactory,
        signing_key_pair: tuple[str, str],
        redis_url: str,
    ) -> None:
        url = await databases.create("admin_api_redis")
        await upgrade_to_head(GATEWAY_MIGRATIONS, url)
        admin_key = generate_api_key("test")
        settings = gateway_settings(url, signing_key_pair[0], admin_key, redis_url=redis_url)
        async with (
            running(create_gateway(settings), base_url="http://a") as gateway_a,
            running(create_gateway(settings), base_url="http://b") as gateway_b,
        ):
            body = {"owner": unique_owner(), "name": "shared", "scopes": ["admin"]}
            created = await gateway_a.post(KEYS, json=body, headers=bearer(admin_key))
            key, key_id = created.json()["key"], created.json()["api_key"]["id"]
            # B caches the key locally.
            warm = await gateway_b.get(f"{KEYS}/{key_id}", headers=bearer(key))
            assert warm.status_code == 200
            revoked = await gateway_a.post(f"{KEYS}/{key_id}/revoke", headers=bearer(admin_key))
            assert revoked.status_code == 200
            started = time.monotonic()
            while True:
                reply = await gateway_b.get(f"{KEYS}/{key_id}", headers=bearer(key))
                if reply.status_code == 401 or time.monotonic() - started > 2.0:
                    break
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - started
        assert reply.status_code == 401, f"gateway B still admits the key after {elapsed:.2f}s"
        assert reply.json()["detail"] == "The API key has been revoked."
        # Well inside the lifetime of an entry cached without the invalidation channel: the
        # refusal came from the pub/sub message, not from the entry running out.
        assert elapsed < DISCONNECTED_TTL_S / 2
