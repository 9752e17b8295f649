"""The gateway's merged OpenAPI document, built from real FastAPI apps' own documents."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field

from gateway.openapi import Fetch, MergedOpenApi, openapi_router
from shared.health import health_router

UPSTREAMS = ("ledger", "custody", "fiscal")
PUBLIC_ROUTES = {"/api/webhooks/trovotech": "custody"}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Services verify the gateway's assertion; some may declare it in their own documents.
caller_assertion = APIKeyHeader(name="X-Kassa-Caller", scheme_name="CallerAssertion")
tenant_key = APIKeyHeader(name="X-Custody-Tenant", scheme_name="TenantKey")


class LedgerSchemas:
    """Stands in for services/ledger_fee/schemas.py."""

    class Charge(BaseModel):
        """The ledger's charge: money owed."""

        charge_id: str
        amount_minor: int


class CustodySchemas:
    """Stands in for services/custody/schemas.py, which has a ``Charge`` of its own."""

    class Charge(BaseModel):
        """Custody's charge: a chain fee, unrelated to the ledger's."""

        wallet_id: str
        fee_e8s: int


class Mint(BaseModel):
    kind: Literal["mint"]
    token: str


class Burn(BaseModel):
    kind: Literal["burn"]
    amount_e8s: int


class WebhookEvent(BaseModel):
    event: Annotated[Mint | Burn, Field(discriminator="kind")]


def ledger_app() -> FastAPI:
    """A ledger with health routes, a caller-assertion header and a caller security scheme."""

    app = FastAPI(title="ledger", description="Double-entry ledger")
    app.include_router(health_router)

    @app.get("/metrics")
    async def metrics() -> str:
        return ""

    @app.post("/charges", response_model=LedgerSchemas.Charge, status_code=201)
    async def create_charge(
        charge: LedgerSchemas.Charge,
        x_kassa_caller: Annotated[str | None, Header()] = None,
    ) -> LedgerSchemas.Charge:
        return charge

    @app.get("/charges/{charge_id}", tags=["charges"])
    async def read_charge(
        charge_id: str, _assertion: Annotated[str, Depends(caller_assertion)]
    ) -> LedgerSchemas.Charge:
        return LedgerSchemas.Charge(charge_id=charge_id, amount_minor=0)

    return app


def custody_app() -> FastAPI:
    """Custody with a public webhook and a route that asks for a header of its own."""

    app = FastAPI(title="custody")

    @app.post("/api/webhooks/trovotech")
    async def trovotech_webhook(event: WebhookEvent) -> dict[str, str]:
        return {"status": "accepted"}

    @app.get("/charges")
    async def list_charges() -> list[CustodySchemas.Charge]:
        return []

    @app.get("/wallets")
    async def list_wallets(_tenant: Annotated[str, Depends(tenant_key)]) -> list[str]:
        return []

    return app


def gateway_own_document() -> dict[str, Any]:
    """What the gateway passes as ``own``: get_openapi over its own routes."""
    admin = APIRouter(prefix="/v1/admin", tags=["admin"])

    @admin.post("/api-keys")
    async def create_api_key(owner: str) -> dict[str, str]:
        return {"owner": owner}

    app = FastAPI()
    app.include_router(health_router)
    app.include_router(admin)
    return get_openapi(title="Kassa gateway", version="0.1.0", routes=app.routes)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Services:
    """The fetch function the gateway would use, over in-process apps; counts every fetch."""

    def __init__(self, apps: dict[str, FastAPI], failing: frozenset[str] = frozenset()) -> None:
        self.apps = apps
        self.failing = set(failing)
        self.calls: Counter[str] = Counter()

    async def fetch(self, name: str) -> dict[str, Any]:
        self.calls[name] += 1
        if name in self.failing:
            raise httpx.ConnectError(f"{name} is down")
        return self.apps[name].openapi()


@pytest.fixture
def services() -> Services:
    return Services(
        {"ledger": ledger_app(), "custody": custody_app()}, failing=frozenset({"fiscal"})
    )


def merged_openapi(fetch: Fetch, **options: Any) -> MergedOpenApi:
    options.setdefault("public_routes", PUBLIC_ROUTES)
    options.setdefault("upstreams", UPSTREAMS)
    return MergedOpenApi(gateway_own_document, fetch=fetch, **options)


@pytest.fixture
async def document(services: Services) -> dict[str, Any]:
    return await merged_openapi(services.fetch).document()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def references(node: Any) -> Iterator[str]:
    """Every local reference in a JSON tree: "$ref" values and discriminator mappings."""
    if isinstance(node, list):
        for item in node:
            yield from references(item)
    elif isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict):
            yield from discriminator.get("mapping", {}).values()
        for value in node.values():
            yield from references(value)


def resolve(document: dict[str, Any], pointer: str) -> Any:
    """The node a local JSON pointer names; KeyError when there is none."""
    assert pointer.startswith("#/"), pointer
    node: Any = document
    for token in pointer[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def assert_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = list(references(document))
    assert refs
    missing = []
    for ref in refs:
        try:
            resolve(document, ref)
        except (KeyError, IndexError, TypeError):
            missing.append(ref)
    assert missing == []


class TestPaths:
    def test_service_paths_are_rerooted_under_their_prefix(self, document: dict[str, Any]) -> None:
        paths = document["paths"]
        assert "/v1/ledger/charges" in paths
        assert "/v1/ledger/charges/{charge_id}" in paths
        assert "/v1/custody/charges" in paths
        assert "/charges" not in paths

    def test_services_operational_paths_are_dropped(self, document: dict[str, Any]) -> None:
        paths = document["paths"]
        for service_path in ("/health", "/ready", "/metrics"):
            assert f"/v1/ledger{service_path}" not in paths

    def test_gateway_own_paths_are_kept_as_they_are(self, document: dict[str, Any]) -> None:
        own = gateway_own_document()
        for path in own["paths"]:
            assert path in document["paths"]
        assert {"/health", "/ready", "/v1/admin/api-keys"} <= document["paths"].keys()

    def test_public_path_keeps_its_own_path_without_a_rerooted_copy(
        self, document: dict[str, Any]
    ) -> None:
        assert "/api/webhooks/trovotech" in document["paths"]
        assert "/v1/custody/api/webhooks/trovotech" not in document["paths"]

    def test_paths_are_sorted(self, document: dict[str, Any]) -> None:
        assert list(document["paths"]) == sorted(document["paths"])

    async def test_document_does_not_depend_on_upstream_order(self, services: Services) -> None:
        forward = await merged_openapi(services.fetch, upstreams=UPSTREAMS).document()
        backward = await merged_openapi(services.fetch, upstreams=UPSTREAMS[::-1]).document()
        assert json.dumps(forward) == json.dumps(backward)

    async def test_fetched_documents_are_not_modified(self, services: Services) -> None:
        before = {name: json.dumps(app.openapi()) for name, app in services.apps.items()}
        await merged_openapi(services.fetch).document()
        after = {name: json.dumps(app.openapi()) for name, app in services.apps.items()}
        assert after == before


class TestComponents:
    def test_both_charge_schemas_are_kept_under_distinct_names(
        self, document: dict[str, Any]
    ) -> None:
        schemas = document["components"]["schemas"]
        assert set(schemas["ledger__Charge"]["properties"]) == {"charge_id", "amount_minor"}
        assert set(schemas["custody__Charge"]["properties"]) == {"wallet_id", "fee_e8s"}
        assert "Charge" not in schemas

    def test_every_reference_resolves(self, document: dict[str, Any]) -> None:
        assert_every_reference_resolves(document)

    def test_references_point_at_their_own_service_schemas(self, document: dict[str, Any]) -> None:
        created = document["paths"]["/v1/ledger/charges"]["post"]
        body = created["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ledger__Charge"}
        listed = document["paths"]["/v1/custody/charges"]["get"]
        reply = listed["responses"]["200"]["content"]["application/json"]["schema"]
        assert reply["items"] == {"$ref": "#/components/schemas/custody__Charge"}

    def test_discriminator_mappings_follow_the_renamed_schemas(
        self, document: dict[str, Any]
    ) -> None:
        event = document["components"]["schemas"]["custody__WebhookEvent"]
        mapping = event["properties"]["event"]["discriminator"]["mapping"]
        assert mapping == {
            "mint": "#/components/schemas/custody__Mint",
            "burn": "#/components/schemas/custody__Burn",
        }

    async def test_pointers_into_paths_and_into_schemas_follow_the_renames(self) -> None:
        # FastAPI never writes these, but a hand-written service document may.
        reply = {"description": "ok", "content": {"application/json": {"schema": {}}}}
        handwritten: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": "fiscal", "version": "1"},
            "paths": {
                "/receipts": {"get": {"responses": {"200": reply}}},
                "/receipts/latest": {
                    "get": {"responses": {"200": {"$ref": "#/paths/~1receipts/get/responses/200"}}}
                },
                "/totals": {
                    "get": {
                        "responses": {
                            "200": {
                                "description": "ok",
                                "content": {
                                    "application/json": {
                                        "schema": {
                                            "$ref": "#/components/schemas/Receipt/properties/total"
                                        }
                                    }
                                },
                            }
                        }
                    }
                },
            },
            "components": {"schemas": {"Receipt": {"type": "object", "properties": {"total": {}}}}},
        }

        async def fetch(name: str) -> dict[str, Any]:
            return handwritten

        document = await MergedOpenApi(gateway_own_document, ["fiscal"], fetch).document()
        latest = document["paths"]["/v1/fiscal/receipts/latest"]["get"]["responses"]["200"]
        assert latest == {"$ref": "#/paths/~1v1~1fiscal~1receipts/get/responses/200"}
        totals = document["paths"]["/v1/fiscal/totals"]["get"]["responses"]["200"]
        schema = totals["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/fiscal__Receipt/properties/total"}
        assert_every_reference_resolves(document)

    def test_each_service_validation_error_is_namespaced(self, document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        assert {"ledger__HTTPValidationError", "custody__HTTPValidationError"} <= schemas.keys()

    def test_components_are_sorted(self, document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        assert list(schemas) == sorted(schemas)


class TestOperations:
    def test_operation_ids_are_unique_and_prefixed(self, document: dict[str, Any]) -> None:
        ids = [op["operationId"] for _, _, op in operations(document) if "operationId" in op]
        assert len(ids) == len(set(ids))
        ledger = document["paths"]["/v1/ledger/charges"]["post"]["operationId"]
        assert ledger.startswith("ledger__")
        custody = document["paths"]["/v1/custody/charges"]["get"]["operationId"]
        assert custody.startswith("custody__")

    def test_untagged_operation_gets_its_service_name(self, document: dict[str, Any]) -> None:
        assert document["paths"]["/v1/ledger/charges"]["post"]["tags"] == ["ledger"]
        assert document["paths"]["/v1/custody/wallets"]["get"]["tags"] == ["custody"]

    def test_tagged_operation_keeps_its_tags(self, document: dict[str, Any]) -> None:
        read = document["paths"]["/v1/ledger/charges/{charge_id}"]["get"]
        assert read["tags"] == ["charges"]

    def test_service_tags_are_listed_once(self, document: dict[str, Any]) -> None:
        names = [tag["name"] for tag in document["tags"]]
        assert sorted(names) == ["custody", "ledger"]
        ledger = next(tag for tag in document["tags"] if tag["name"] == "ledger")
        assert ledger["description"] == "Double-entry ledger"


class TestSecurity:
    def test_api_key_schemes_are_required_at_the_top(self, document: dict[str, Any]) -> None:
        schemes = document["components"]["securitySchemes"]
        assert schemes["ApiKeyBearer"] == {
            "type": "http",
            "scheme": "bearer",
            "description": schemes["ApiKeyBearer"]["description"],
        }
        assert schemes["ApiKeyHeader"]["type"] == "apiKey"
        assert schemes["ApiKeyHeader"]["in"] == "header"
        assert schemes["ApiKeyHeader"]["name"] == "X-API-Key"
        assert document["security"] == [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]

    def test_routed_operations_inherit_the_api_key(self, document: dict[str, Any]) -> None:
        assert "security" not in document["paths"]["/v1/ledger/charges"]["post"]
        assert "security" not in document["paths"]["/v1/ledger/charges/{charge_id}"]["get"]

    def test_public_route_needs_no_key(self, document: dict[str, Any]) -> None:
        assert document["paths"]["/api/webhooks/trovotech"]["post"]["security"] == []

    def test_gateway_operational_routes_need_no_key(self, document: dict[str, Any]) -> None:
        assert document["paths"]["/health"]["get"]["security"] == []
        assert document["paths"]["/ready"]["get"]["security"] == []
        assert "security" not in document["paths"]["/v1/admin/api-keys"]["post"]

    def test_a_service_own_scheme_is_needed_besides_the_key(self, document: dict[str, Any]) -> None:
        wallets = document["paths"]["/v1/custody/wallets"]["get"]
        assert wallets["security"] == [
            {"ApiKeyBearer": [], "custody__TenantKey": []},
            {"ApiKeyHeader": [], "custody__TenantKey": []},
        ]
        assert document["components"]["securitySchemes"]["custody__TenantKey"]["name"] == (
            "X-Custody-Tenant"
        )

    def test_caller_assertion_is_never_mentioned(self, document: dict[str, Any]) -> None:
        assert "x-kassa-caller" not in json.dumps(document).lower()
        assert "ledger__CallerAssertion" not in document["components"]["securitySchemes"]

    def test_other_parameters_survive_the_caller_assertion(self, document: dict[str, Any]) -> None:
        read = document["paths"]["/v1/ledger/charges/{charge_id}"]["get"]
        assert [parameter["name"] for parameter in read["parameters"]] == ["charge_id"]


class TestUnavailableUpstreams:
    def test_a_failing_upstream_is_listed_and_left_out(self, document: dict[str, Any]) -> None:
        assert document["info"]["x-kassa-unavailable"] == ["fiscal"]
        assert not any(path.startswith("/v1/fiscal/") for path in document["paths"])
        assert "/v1/ledger/charges" in document["paths"]

    async def test_a_silent_upstream_times_out(self, services: Services) -> None:
        async def hanging(name: str) -> dict[str, Any]:
            if name == "ledger":
                await asyncio.Event().wait()
            return await services.fetch(name)

        merged = merged_openapi(hanging, fetch_timeout_s=0.05)
        document = await asyncio.wait_for(merged.document(), timeout=5)
        assert document["info"]["x-kassa-unavailable"] == ["fiscal", "ledger"]
        assert "/v1/custody/charges" in document["paths"]

    async def test_no_list_when_every_upstream_answers(self, services: Services) -> None:
        services.failing.clear()
        services.apps["fiscal"] = FastAPI()
        document = await merged_openapi(services.fetch).document()
        assert "x-kassa-unavailable" not in document["info"]

    async def test_failed_upstream_is_fetched_again_soon(self, services: Services) -> None:
        clock = FakeClock()
        merged = merged_openapi(services.fetch, ttl_s=60, failure_ttl_s=5, clock=clock)
        await merged.document()
        services.failing.clear()
        services.apps["fiscal"] = FastAPI()
        clock.now += 5
        document = await merged.document()
        assert "x-kassa-unavailable" not in document["info"]
        assert services.calls == {"ledger": 1, "custody": 1, "fiscal": 2}
        # The documents fetched the first time are merged again, exactly as the first time.
        assert "/v1/ledger/charges" in document["paths"]
        assert "ledger__ledger__" not in json.dumps(document)
        assert_every_reference_resolves(document)

    async def test_a_clashing_upstream_is_left_out_rather_than_overwriting(
        self, services: Services
    ) -> None:
        merged = merged_openapi(services.fetch, public_routes={"/v1/admin/api-keys": "custody"})
        services.apps["custody"].post("/v1/admin/api-keys")(lambda: None)
        document = await merged.document()
        assert document["info"]["x-kassa-unavailable"] == ["custody", "fiscal"]
        assert document["paths"]["/v1/admin/api-keys"]["post"]["tags"] == ["admin"]


class TestCaching:
    async def test_one_fetch_per_upstream_within_the_ttl(self, services: Services) -> None:
        clock = FakeClock()
        services.failing.clear()
        services.apps["fiscal"] = FastAPI()
        merged = merged_openapi(services.fetch, ttl_s=60, clock=clock)
        first = await merged.document()
        clock.now += 59
        assert await merged.document() is first
        assert services.calls == {"ledger": 1, "custody": 1, "fiscal": 1}

    async def test_fetched_again_after_the_ttl(self, services: Services) -> None:
        clock = FakeClock()
        merged = merged_openapi(services.fetch, ttl_s=60, clock=clock)
        await merged.document()
        clock.now += 60
        await merged.document()
        assert services.calls == {"ledger": 2, "custody": 2, "fiscal": 2}

    async def test_failure_is_not_kept_for_the_whole_ttl(self, services: Services) -> None:
        clock = FakeClock()
        merged = merged_openapi(services.fetch, ttl_s=60, failure_ttl_s=5, clock=clock)
        await merged.document()
        clock.now += 4
        await merged.document()
        assert services.calls["fiscal"] == 1
        clock.now += 1
        await merged.document()
        assert services.calls == {"ledger": 1, "custody": 1, "fiscal": 2}

    async def test_concurrent_callers_share_one_fetch(self, services: Services) -> None:
        gate = asyncio.Event()

        async def slow(name: str) -> dict[str, Any]:
            await gate.wait()
            return await services.fetch(name)

        merged = merged_openapi(slow)
        callers = [asyncio.create_task(merged.document()) for _ in range(20)]
        await asyncio.sleep(0.01)
        gate.set()
        documents = await asyncio.gather(*callers)
        assert services.calls == {"ledger": 1, "custody": 1, "fiscal": 1}
        assert all(document is documents[0] for document in documents)

    async def test_upstreams_are_fetched_concurrently(self, services: Services) -> None:
        started: set[str] = set()
        everyone_started = asyncio.Event()

        async def waits_for_the_others(name: str) -> dict[str, Any]:
            # Fetched one after another, the first would wait for the rest until it timed out.
            started.add(name)
            if started == set(UPSTREAMS):
                everyone_started.set()
            await everyone_started.wait()
            return await services.fetch(name)

        merged = merged_openapi(waits_for_the_others, fetch_timeout_s=2)
        document = await merged.document()
        assert document["info"]["x-kassa-unavailable"] == ["fiscal"]


class TestValidity:
    async def test_document_is_valid_openapi_3_1(self, services: Services) -> None:
        validator = pytest.importorskip("openapi_spec_validator")
        document = await merged_openapi(services.fetch).document()
        assert document["openapi"] == "3.1.0"
        validator.validate(document)


class TestRouter:
    @pytest.fixture
    def app(self, services: Services) -> FastAPI:
        merged = merged_openapi(services.fetch)

        def merged_of(request: Request) -> MergedOpenApi:
            return merged

        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        app.include_router(openapi_router(merged_of))
        return app

    @pytest.fixture
    async def client(self, app: FastAPI) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")

    async def test_openapi_json_serves_the_merged_document(
        self, client: httpx.AsyncClient, services: Services
    ) -> None:
        async with client:
            response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["info"]["title"] == "Kassa API"
        assert "/v1/ledger/charges" in body["paths"]
        assert body["info"]["x-kassa-unavailable"] == ["fiscal"]

    async def test_docs_serve_swagger_ui_on_the_merged_document(
        self, client: httpx.AsyncClient
    ) -> None:
        async with client:
            response = await client.get("/docs")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "swagger-ui" in response.text
        assert "'/openapi.json'" in response.text

    def test_its_routes_stay_out_of_any_schema(self, app: FastAPI) -> None:
        schema = get_openapi(title="t", version="1", routes=app.routes)
        assert schema.get("paths", {}) == {}
