"""Idempotency-Key: replay, mismatch, in-flight, and exactly once under a race."""

from __future__ import annotations

import asyncio

from shared.identity import AssertionSigner
from tests.conftest import assertion_header
from tests.shared.conftest import Kit

WIDGET = {"name": "bolt", "quantity": 3}


async def _count(kit: Kit) -> int:
    return int((await kit.client.get("/widgets/count")).json()["count"])


class TestReplay:
    async def test_same_key_and_body_replays_the_stored_reply(self, kit: Kit) -> None:
        headers = {"Idempotency-Key": "order-1"}
        first = await kit.client.post("/widgets", json=WIDGET, headers=headers)
        second = await kit.client.post("/widgets", json=WIDGET, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert await _count(kit) == 1

    async def test_different_body_with_the_same_key_is_a_422(self, kit: Kit) -> None:
        headers = {"Idempotency-Key": "order-2"}
        await kit.client.post("/widgets", json=WIDGET, headers=headers)
        reply = await kit.client.post("/widgets", json={**WIDGET, "quantity": 4}, headers=headers)
        assert reply.status_code == 422
        assert reply.json()["type"] == "urn:kassa:problem:idempotency-key-mismatch"
        assert await _count(kit) == 1

    async def test_keys_of_different_callers_do_not_collide(
        self, kit: Kit, signer: AssertionSigner
    ) -> None:
        await kit.client.post("/widgets", json=WIDGET, headers={"Idempotency-Key": "shared"})
        other = {"Idempotency-Key": "shared", **assertion_header(signer, "kit", owner="globex")}
        reply = await kit.client.post("/widgets", json=WIDGET, headers=other)
        assert reply.status_code == 201
        assert reply.json()["owner"] == "globex"
        assert "idempotent-replayed" not in reply.headers
        assert await _count(kit) == 2

    async def test_without_a_key_every_post_runs(self, kit: Kit) -> None:
        await kit.client.post("/widgets", json=WIDGET)
        await kit.client.post("/widgets", json=WIDGET)
        assert await _count(kit) == 2

    async def test_a_refusal_is_replayed_and_nothing_is_written(self, kit: Kit) -> None:
        headers = {"Idempotency-Key": "refused-1"}
        first = await kit.client.post("/widgets/refused", json=WIDGET, headers=headers)
        second = await kit.client.post("/widgets/refused", json=WIDGET, headers=headers)
        assert first.status_code == second.status_code == 409
        assert second.json()["type"] == first.json()["type"]
        assert second.headers["idempotent-replayed"] == "true"
        assert await _count(kit) == 0

    async def test_a_crash_releases_the_key_so_a_retry_runs(self, kit: Kit) -> None:
        headers = {"Idempotency-Key": "crash-1"}
        crashed = await kit.client.post("/widgets/then-crash", json=WIDGET, headers=headers)
        assert crashed.status_code == 500
        retried = await kit.client.post("/widgets/then-crash", json=WIDGET, headers=headers)
        assert retried.status_code == 500
        assert "idempotent-replayed" not in retried.headers
        assert await _count(kit) == 0

    async def test_an_overlong_key_is_refused_naming_the_header(self, kit: Kit) -> None:
        reply = await kit.client.post(
            "/widgets", json=WIDGET, headers={"Idempotency-Key": "k" * 256}
        )
        assert reply.status_code == 422
        assert reply.json()["errors"][0]["field"] == "header.idempotency-key"


class TestConcurrency:
    async def test_a_key_in_flight_is_a_409(self, kit: Kit) -> None:
        gate = asyncio.Event()
        kit.app.state.gate = gate
        headers = {"Idempotency-Key": "slow-1"}
        first = asyncio.create_task(kit.client.post("/widgets", json=WIDGET, headers=headers))
        await asyncio.sleep(0.3)  # the first request now holds the key, waiting at the gate
        second = await kit.client.post("/widgets", json=WIDGET, headers=headers)
        gate.set()
        assert second.status_code == 409
        assert second.json()["type"] == "urn:kassa:problem:idempotency-key-in-use"
        assert second.headers["retry-after"] == "1"
        assert (await first).status_code == 201
        kit.app.state.gate = None
        assert await _count(kit) == 1

    async def test_twenty_concurrent_requests_with_one_key_write_once(self, kit: Kit) -> None:
        headers = {"Idempotency-Key": "storm-1"}
        replies = await asyncio.gather(
            *(kit.client.post("/widgets", json=WIDGET, headers=headers) for _ in range(20))
        )
        statuses = sorted(reply.status_code for reply in replies)
        assert set(statuses) <= {201, 409}
        assert statuses.count(201) >= 1
        created = {reply.json()["id"] for reply in replies if reply.status_code == 201}
        assert len(created) == 1  # every 201 is the same widget, replayed
        assert await _count(kit) == 1
