"""Every error is RFC 9457 problem+json: typed errors, validation, 404/405, unexpected 500."""

from __future__ import annotations

from tests.shared.conftest import Kit

PROBLEM = "application/problem+json"


class TestValidationErrors:
    async def test_body_errors_name_each_failing_field(self, kit: Kit) -> None:
        reply = await kit.client.post("/widgets", json={"name": "", "quantity": "many"})
        assert reply.status_code == 422
        assert reply.headers["content-type"] == PROBLEM
        problem = reply.json()
        assert problem["type"] == "urn:kassa:problem:validation-error"
        assert problem["status"] == 422
        fields = {error["field"] for error in problem["errors"]}
        assert fields == {"body.name", "body.quantity"}
        assert "body.name" in problem["detail"]

    async def test_missing_body_field_is_reported_as_missing(self, kit: Kit) -> None:
        reply = await kit.client.post("/widgets", json={"name": "bolt"})
        assert reply.status_code == 422
        assert reply.json()["errors"] == [
            {"field": "body.quantity", "message": "Field required", "type": "missing"}
        ]

    async def test_path_and_query_errors_name_their_location(self, kit: Kit) -> None:
        reply = await kit.client.get("/items/abc", params={"limit": "x"})
        assert reply.status_code == 422
        fields = {error["field"] for error in reply.json()["errors"]}
        assert fields == {"path.item_id", "query.limit"}

    async def test_malformed_json_is_a_422_not_a_500(self, kit: Kit) -> None:
        reply = await kit.client.post(
            "/widgets", content=b'{"name": ', headers={"content-type": "application/json"}
        )
        assert reply.status_code == 422
        assert reply.headers["content-type"] == PROBLEM


class TestHttpErrors:
    async def test_unknown_path_is_a_404_problem(self, kit: Kit) -> None:
        reply = await kit.client.get("/no/such/thing")
        assert reply.status_code == 404
        assert reply.headers["content-type"] == PROBLEM
        assert reply.json()["title"] == "Not Found"
        assert reply.json()["instance"] == "/no/such/thing"

    async def test_wrong_method_is_a_405_problem_with_allow(self, kit: Kit) -> None:
        reply = await kit.client.delete("/widgets")
        assert reply.status_code == 405
        assert reply.headers["content-type"] == PROBLEM
        assert "POST" in reply.headers["allow"]


class TestTypedErrors:
    async def test_typed_error_carries_its_type_detail_and_extensions(self, kit: Kit) -> None:
        reply = await kit.client.post("/widgets/refused", json={"name": "nut", "quantity": 1})
        assert reply.status_code == 409
        problem = reply.json()
        assert problem["type"] == "urn:kassa:problem:widget-out-of-stock"
        assert problem["detail"] == "No stock for nut."
        assert problem["remaining"] == 0
        assert problem["request_id"] == reply.headers["x-request-id"]

    async def test_typed_error_rolls_back_what_the_route_wrote(self, kit: Kit) -> None:
        await kit.client.post("/widgets/refused", json={"name": "nut", "quantity": 1})
        assert (await kit.client.get("/widgets/count")).json() == {"count": 0}


class TestUnexpectedErrors:
    async def test_crash_is_a_500_with_request_id_and_no_internals(self, kit: Kit) -> None:
        reply = await kit.client.post(
            "/widgets/then-crash",
            json={"name": "gear", "quantity": 1},
            headers={"X-Request-ID": "trace-me-42"},
        )
        assert reply.status_code == 500
        assert reply.headers["content-type"] == PROBLEM
        assert reply.headers["x-request-id"] == "trace-me-42"
        problem = reply.json()
        assert problem["request_id"] == "trace-me-42"
        assert "hunter2" not in reply.text
        assert "Traceback" not in reply.text

    async def test_crash_rolls_back_what_the_route_wrote(self, kit: Kit) -> None:
        await kit.client.post("/widgets/then-crash", json={"name": "gear", "quantity": 1})
        assert (await kit.client.get("/widgets/count")).json() == {"count": 0}

    async def test_success_commits_before_the_reply(self, kit: Kit) -> None:
        reply = await kit.client.post("/widgets", json={"name": "gear", "quantity": 1})
        assert reply.status_code == 201
        assert (await kit.client.get("/widgets/count")).json() == {"count": 1}


class TestRequestIds:
    async def test_a_request_id_is_created_when_absent(self, kit: Kit) -> None:
        reply = await kit.client.get("/items/1")
        assert len(reply.headers["x-request-id"]) == 32

    async def test_a_hostile_request_id_is_replaced(self, kit: Kit) -> None:
        reply = await kit.client.get("/items/1", headers={"X-Request-ID": "a b\tc" + "x" * 300})
        assert reply.headers["x-request-id"] != "a b\tc" + "x" * 300
        assert len(reply.headers["x-request-id"]) == 32
