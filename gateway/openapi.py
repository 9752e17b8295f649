"""One OpenAPI 3.1 document for all of Kassa, as clients see it through the gateway.

Each service publishes its own ``/openapi.json`` in its own terms: paths without the gateway's
``/v1/<service>`` prefix, component names that collide between services (every FastAPI app has
an ``HTTPValidationError``), and no word about API keys. :class:`MergedOpenApi` fetches those
documents, re-roots and namespaces them, adds the gateway's API-key security, and caches the
result; :func:`openapi_router` serves it at ``/openapi.json`` with Swagger UI at ``/docs``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from shared.identity import ASSERTION_HEADER
from shared.logging import get_logger

log = get_logger(__name__)

Fetch = Callable[[str], Awaitable[dict[str, Any]]]
"""Upstream name -> that service's ``/openapi.json`` document; raises when it cannot."""

OPENAPI_VERSION = "3.1.0"
# Joins an upstream's name to the names it owns: `ledger__Charge`, `ledger__create_charge`.
# Component names must match ^[a-zA-Z0-9._-]+$, so no readable separator like ":" is allowed.
SEPARATOR = "__"
# The gateway's own /health and /ready stand for the system; a service's are internal.
OPERATIONAL_PATHS = frozenset({"/health", "/ready", "/metrics"})
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
API_KEY_BEARER = "ApiKeyBearer"
API_KEY_HEADER = "ApiKeyHeader"
GATEWAY_SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    API_KEY_BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (kas_live_… or kas_test_…) as `Authorization: Bearer <key>`.",
    },
    API_KEY_HEADER: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same API key in the `X-API-Key` header.",
    },
}
# Either scheme admits a request: a list of requirements is an OR.
GATEWAY_SECURITY: list[dict[str, list[str]]] = [{API_KEY_BEARER: []}, {API_KEY_HEADER: []}]
DEFAULT_DESCRIPTION = (
    "Every Kassa service as reached through the gateway: /v1/<service>/… with an API key, "
    "and the public routes without one."
)


class _MergeConflict(Exception):
    """An upstream's contribution would overwrite something already in the document."""


@dataclass
class _Fetched:
    """The last fetch of one upstream's document, good until ``expires_at``."""

    document: dict[str, Any] | None
    expires_at: float


@dataclass
class _Contribution:
    """What one upstream adds to the merged document, already in the gateway's terms."""

    paths: dict[str, Any]
    components: dict[str, dict[str, Any]]
    webhooks: dict[str, Any]
    tags: list[dict[str, Any]] = field(default_factory=list)


class MergedOpenApi:
    """The gateway's OpenAPI document: its own routes plus every service's, fetched and cached.

    The merged document is kept for ``ttl_s``; an upstream whose fetch failed is left out,
    listed under ``info["x-kassa-unavailable"]`` and fetched again after ``failure_ttl_s``.
    """

    def __init__(
        self,
        own: Callable[[], dict[str, Any]],
        upstreams: Sequence[str],
        fetch: Fetch,
        public_routes: Mapping[str, str] | None = None,
        ttl_s: float = 60.0,
        title: str = "Kassa API",
        version: str = "0.1.0",
        *,
        description: str = DEFAULT_DESCRIPTION,
        failure_ttl_s: float = 5.0,
        fetch_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self.version = version
        self.description = description
        self._own = own
        # Sorted so that the merge order, and with it the document, never depends on config order.
        self._upstreams = tuple(sorted(set(upstreams)))
        self._fetch = fetch
        self._public_routes = dict(public_routes or {})
        self._ttl_s = ttl_s
        self._failure_ttl_s = min(failure_ttl_s, ttl_s)
        self._fetch_timeout_s = fetch_timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._fetched: dict[str, _Fetched] = {}
        self._merged: dict[str, Any] | None = None
        self._merged_expires_at = 0.0

    async def document(self) -> dict[str, Any]:
        """The merged document (shared between callers: treat it as read-only)."""
        if self._merged is not None and self._clock() < self._merged_expires_at:
            return self._merged
        async with self._lock:
            # Whoever waited on the lock finds the refresh the first caller just made.
            now = self._clock()
            if self._merged is None or now >= self._merged_expires_at:
                await self._refresh_expired(now)
                self._merged = self._merge()
                self._merged_expires_at = min(
                    (entry.expires_at for entry in self._fetched.values()),
                    default=now + self._ttl_s,
                )
            return self._merged

    async def _refresh_expired(self, now: float) -> None:
        expired = [
            name
            for name in self._upstreams
            if name not in self._fetched or now >= self._fetched[name].expires_at
        ]
        results = await asyncio.gather(*(self._fetch_one(name, now) for name in expired))
        self._fetched.update(zip(expired, results, strict=True))

    async def _fetch_one(self, name: str, now: float) -> _Fetched:
        try:
            async with asyncio.timeout(self._fetch_timeout_s):
                document = await self._fetch(name)
        except TimeoutError:
            return self._failed(name, now, f"no answer within {self._fetch_timeout_s:g} s")
        except Exception as exc:  # any failure leaves this one service out, never the document
            return self._failed(name, now, f"{type(exc).__name__}: {exc}")
        return _Fetched(document, expires_at=now + self._ttl_s)

    def _failed(self, name: str, now: float, reason: str) -> _Fetched:
        log.warning("openapi_upstream_unavailable", upstream=name, reason=reason)
        return _Fetched(None, expires_at=now + self._failure_ttl_s)

    def _merge(self) -> dict[str, Any]:
        merged = _gateway_document(copy.deepcopy(self._own()))
        unavailable: list[str] = []
        for name in self._upstreams:
            fetched = self._fetched[name]
            if fetched.document is None:
                unavailable.append(name)
                continue
            # Copied: the fetched document is merged again at every refresh, and the fetcher may
            # hand out an object of its own (FastAPI's app.openapi() does).
            document = copy.deepcopy(fetched.document)
            try:
                _add(merged, _contribution(name, document, self._public_of(name)))
            except _MergeConflict as exc:
                log.warning("openapi_upstream_conflict", upstream=name, reason=str(exc))
                unavailable.append(name)
        info: dict[str, Any] = {
            **merged.get("info", {}),
            "title": self.title,
            "version": self.version,
            "description": self.description,
        }
        if unavailable:
            info["x-kassa-unavailable"] = unavailable
        merged["info"] = info
        return _finish(merged)

    def _public_of(self, name: str) -> frozenset[str]:
        return frozenset(path for path, owner in self._public_routes.items() if owner == name)


def openapi_router(merged_of: Callable[[Request], MergedOpenApi]) -> APIRouter:
    """``GET /openapi.json`` (the merged document) and ``GET /docs`` (Swagger UI on it)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    async def merged_openapi(request: Request) -> JSONResponse:
        return JSONResponse(await merged_of(request).document())

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        # Behind a path-rewriting proxy the browser must ask for the document under root_path.
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root_path}/openapi.json",
            title=f"{merged_of(request).title} - Swagger UI",
        )

    return router


def _contribution(
    name: str, document: dict[str, Any], public_paths: Iterable[str] = ()
) -> _Contribution:
    """One service's document in the gateway's terms (``document`` is consumed, not copied).

    Paths move under ``/v1/<name>`` except the public ones; operational paths are dropped;
    components, operationIds and security schemes get the ``<name>__`` prefix; every mention of
    the caller assertion header goes, since the gateway adds it and clients never send it.
    """
    public = frozenset(public_paths)
    _strip_caller_assertion(document)
    path_map = {
        path: path if path in public else f"/v1/{name}{path}"
        for path in document.get("paths", {})
        if path not in OPERATIONAL_PATHS
    }
    document = _rewrite_refs(document, name, path_map)
    upstream_security = document.get("security")
    paths: dict[str, Any] = {}
    for path, new_path in path_map.items():
        item = document["paths"][path]
        for operation in _operations(item):
            _adapt_operation(operation, name, upstream_security, public=path in public)
        paths[new_path] = item
    return _Contribution(
        paths=paths,
        components={
            section: {_namespaced(name, key): value for key, value in entries.items()}
            for section, entries in document.get("components", {}).items()
            if isinstance(entries, dict)
        },
        webhooks={
            _namespaced(name, key): value for key, value in document.get("webhooks", {}).items()
        },
        tags=_tags_of(name, document, paths),
    )


def _namespaced(name: str, key: str) -> str:
    return f"{name}{SEPARATOR}{key}"


def _operations(path_item: dict[str, Any]) -> list[dict[str, Any]]:
    return [path_item[method] for method in HTTP_METHODS if isinstance(path_item.get(method), dict)]


def _mentions_caller_assertion(node: Any) -> bool:
    return ASSERTION_HEADER in json.dumps(node).lower()


def _strip_caller_assertion(document: dict[str, Any]) -> None:
    """Drop parameters and security schemes about ``X-Kassa-Caller``, and every use of them."""
    components = document.get("components", {})
    dropped_parameters = _drop_mentioning(components.get("parameters", {}))
    dropped_schemes = _drop_mentioning(components.get("securitySchemes", {}))
    dropped_refs = {f"#/components/parameters/{key}" for key in dropped_parameters}
    for path_item in document.get("paths", {}).values():
        for holder in (path_item, *_operations(path_item)):
            if "parameters" in holder:
                holder["parameters"] = [
                    parameter
                    for parameter in holder["parameters"]
                    if parameter.get("$ref") not in dropped_refs
                    and not _mentions_caller_assertion(parameter)
                ]
            if "security" in holder:
                holder["security"] = _without_schemes(holder["security"], dropped_schemes)
    if "security" in document:
        document["security"] = _without_schemes(document["security"], dropped_schemes)


def _drop_mentioning(entries: dict[str, Any]) -> set[str]:
    dropped = {key for key, value in entries.items() if _mentions_caller_assertion(value)}
    for key in dropped:
        del entries[key]
    return dropped


def _without_schemes(
    requirements: list[dict[str, list[str]]], dropped: set[str]
) -> list[dict[str, list[str]]]:
    # A requirement made only of dropped schemes goes entirely: left as {} it would read as
    # "no authentication is also fine", which the service never said.
    kept: list[dict[str, list[str]]] = []
    for requirement in requirements:
        remaining = {key: scopes for key, scopes in requirement.items() if key not in dropped}
        if remaining or not requirement:
            kept.append(remaining)
    return kept


def _rewrite_refs(node: Any, name: str, path_map: Mapping[str, str]) -> Any:
    """A copy of ``node`` whose local references follow the renames (the whole JSON tree)."""
    if isinstance(node, list):
        return [_rewrite_refs(item, name, path_map) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {key: _rewrite_refs(value, name, path_map) for key, value in node.items()}
    if isinstance(rewritten.get("$ref"), str):
        rewritten["$ref"] = _rewrite_pointer(rewritten["$ref"], name, path_map)
    discriminator = rewritten.get("discriminator")
    if isinstance(discriminator, dict) and isinstance(discriminator.get("mapping"), dict):
        # Discriminator mappings name schemas by reference too, outside any "$ref" key.
        discriminator["mapping"] = {
            tag: _rewrite_pointer(target, name, path_map) if isinstance(target, str) else target
            for tag, target in discriminator["mapping"].items()
        }
    return rewritten


def _rewrite_pointer(pointer: str, name: str, path_map: Mapping[str, str]) -> str:
    if pointer.startswith("#/components/"):
        parts = pointer.split("/", 3)
        if len(parts) == 4:
            return "/".join((*parts[:3], _namespaced(name, parts[3])))
        return pointer
    if pointer.startswith("#/paths/"):
        escaped, _, rest = pointer.removeprefix("#/paths/").partition("/")
        new_path = path_map.get(_unescape(escaped))
        if new_path is not None:
            return "/".join(part for part in ("#/paths", _escape(new_path), rest) if part)
    return pointer


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _adapt_operation(
    operation: dict[str, Any],
    name: str,
    upstream_security: list[dict[str, list[str]]] | None,
    *,
    public: bool,
) -> None:
    if "operationId" in operation:
        operation["operationId"] = _namespaced(name, operation["operationId"])
    if not operation.get("tags"):
        operation["tags"] = [name]
    # What the service itself still asks for (a webhook signature, say), in namespaced names.
    own = [
        {_namespaced(name, scheme): scopes for scheme, scopes in requirement.items()}
        for requirement in operation.get("security", upstream_security) or []
    ]
    if public:
        operation["security"] = own
    elif own:
        # The API key is needed on top of whatever the service asks for: AND inside each entry.
        operation["security"] = [
            {**gateway, **requirement} for requirement in own for gateway in GATEWAY_SECURITY
        ]
    else:
        # The document's top-level security (an API key) applies.
        operation.pop("security", None)


def _tags_of(name: str, document: dict[str, Any], paths: dict[str, Any]) -> list[dict[str, Any]]:
    tags = [tag for tag in document.get("tags", []) if isinstance(tag, dict) and "name" in tag]
    uses_own_name = any(
        name in operation.get("tags", [])
        for item in paths.values()
        for operation in _operations(item)
    )
    if uses_own_name and all(tag["name"] != name for tag in tags):
        info = document.get("info", {})
        tags.append(
            {"name": name, "description": info.get("description") or info.get("title", name)}
        )
    return tags


def _gateway_document(own: dict[str, Any]) -> dict[str, Any]:
    """The gateway's own document, with its keyless operational routes marked as such."""
    _strip_caller_assertion(own)
    own["openapi"] = OPENAPI_VERSION
    own.setdefault("paths", {})
    own.setdefault("components", {})
    for path in OPERATIONAL_PATHS & own["paths"].keys():
        for operation in _operations(own["paths"][path]):
            operation.setdefault("security", [])
    own["components"]["securitySchemes"] = {
        **own["components"].get("securitySchemes", {}),
        **copy.deepcopy(GATEWAY_SECURITY_SCHEMES),
    }
    own["security"] = copy.deepcopy(GATEWAY_SECURITY)
    return own


def _add(merged: dict[str, Any], contribution: _Contribution) -> None:
    """Adds one upstream's part, or nothing at all when any of it would overwrite another's."""
    clashes = sorted(merged["paths"].keys() & contribution.paths.keys())
    for section, entries in contribution.components.items():
        existing = merged["components"].get(section, {})
        clashes += [f"components/{section}/{key}" for key in sorted(existing.keys() & entries)]
    clashes += sorted(merged.get("webhooks", {}).keys() & contribution.webhooks.keys())
    if clashes:
        raise _MergeConflict(f"already in the document: {', '.join(clashes)}")
    _make_operation_ids_unique(merged, contribution.paths)
    merged["paths"].update(contribution.paths)
    for section, entries in contribution.components.items():
        merged["components"].setdefault(section, {}).update(entries)
    if contribution.webhooks:
        merged.setdefault("webhooks", {}).update(contribution.webhooks)
    known = {tag["name"] for tag in merged.get("tags", [])}
    new_tags = [tag for tag in contribution.tags if tag["name"] not in known]
    if new_tags:
        merged.setdefault("tags", []).extend(new_tags)


def _make_operation_ids_unique(merged: dict[str, Any], paths: dict[str, Any]) -> None:
    # FastAPI only warns about a duplicate operationId; clients generated from it would break.
    taken = {
        operation["operationId"]
        for item in merged["paths"].values()
        for operation in _operations(item)
        if "operationId" in operation
    }
    for path in sorted(paths):
        for operation in _operations(paths[path]):
            if "operationId" not in operation:
                continue
            candidate, counter = operation["operationId"], 1
            while candidate in taken:
                counter += 1
                candidate = f"{operation['operationId']}_{counter}"
            operation["operationId"] = candidate
            taken.add(candidate)


def _finish(merged: dict[str, Any]) -> dict[str, Any]:
    """Sorted paths, components and webhooks, so two documents of one system diff cleanly."""
    merged["paths"] = dict(sorted(merged["paths"].items()))
    merged["components"] = {
        section: dict(sorted(entries.items()))
        for section, entries in sorted(merged["components"].items())
        if entries
    }
    if "webhooks" in merged:
        merged["webhooks"] = dict(sorted(merged["webhooks"].items()))
    return merged
