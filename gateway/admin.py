"""``/v1/admin/api-keys``: create, list, read, rotate and revoke API keys (``admin`` scope).

The front door (``gateway/proxy.py``) authenticates every request under ``/v1/admin/`` and puts
the caller in the request state before routing; these routes only authorise it. Revocation and
rotation drop the affected keys from the key cache after the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from gateway.authentication import InsufficientScope, InvalidApiKey
from gateway.config import GatewaySettings
from gateway.key_cache import KeyCache
from gateway.schemas import (
    KEY_ID_PATTERN,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRead,
    ApiKeyRotate,
    ApiKeyRotated,
    KeyState,
)
from gateway.service import ApiKeyNotFound, ApiKeyNotRotatable, api_key_secret, api_key_service
from shared.errors import problem_responses
from shared.identity import ADMIN_SCOPE, Caller
from shared.routing import after_commit, kassa_router
from shared.runtime import SessionDep

MAX_PAGE = 200


def admin_caller(request: Request) -> Caller:
    """The authenticated caller, who must hold the ``admin`` scope."""
    caller = request.scope.get("state", {}).get("caller")
    if not isinstance(caller, Caller):
        # The front door authenticates /v1/admin/; getting here without a caller is a wiring
        # fault, and the answer must still be a refusal.
        raise InvalidApiKey(
            "Send an API key in 'Authorization: Bearer <key>' or the 'X-API-Key' header.",
            reason="missing",
        )
    if not caller.has_scope(ADMIN_SCOPE):
        raise InsufficientScope(
            "Managing API keys requires the 'admin' scope; "
            f"this key has {', '.join(sorted(caller.scopes)) or 'no scopes'}."
        )
    return caller


def gateway_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


SettingsDep = Annotated[GatewaySettings, Depends(gateway_settings)]


def key_secret(settings: SettingsDep) -> bytes:
    return api_key_secret(settings)


def key_cache(request: Request) -> KeyCache:
    # The live cache the front door reads; built in the gateway's lifespan.
    cache: KeyCache = request.app.state.gateway.key_cache
    return cache


AdminCaller = Annotated[Caller, Depends(admin_caller)]
KeySecretDep = Annotated[bytes, Depends(key_secret)]
KeyCacheDep = Annotated[KeyCache, Depends(key_cache)]
KeyId = Annotated[str, Path(description="The key's id.")]


def invalidate_after_commit(request: Request, cache: KeyCache, key_hashes: Iterable[str]) -> None:
    """Drop ``key_hashes`` from every gateway's cache once the change is committed."""
    hashes = tuple(key_hashes)

    async def invalidate() -> None:
        await cache.invalidate(hashes)

    after_commit(request, invalidate)


def _never_cached(response: Response) -> None:
    # The reply carries a key in clear: no proxy or browser may keep it.
    response.headers["Cache-Control"] = "no-store"


router = kassa_router(
    prefix="/v1/admin/api-keys",
    tags=["API keys"],
    responses=problem_responses(InvalidApiKey, InsufficientScope),
)


@router.post(
    "",
    status_code=201,
    summary="Create an API key",
    description=(
        "Issues a key and returns it **once**: Kassa stores only its HMAC-SHA256 and cannot "
        "show it again. Honours `Idempotency-Key` (a retry replays the same reply, key "
        "included, for 24 hours)."
    ),
)
async def create_api_key(
    spec: ApiKeyCreate,
    caller: AdminCaller,
    session: SessionDep,
    secret: KeySecretDep,
    response: Response,
) -> ApiKeyCreated:
    issued = await api_key_service.create(session, secret, spec, actor=caller.key_id)
    _never_cached(response)
    return ApiKeyCreated.of(issued.api_key, issued.key)


@router.get("", summary="List API keys", description="Newest first, a page at a time.")
async def list_api_keys(
    caller: AdminCaller,
    session: SessionDep,
    owner: Annotated[str | None, Query(description="Only this owner's keys.")] = None,
    state: Annotated[KeyState | None, Query(description="Only keys in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Keys per page.")] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=KEY_ID_PATTERN, description="next_cursor of the previous page."),
    ] = None,
) -> ApiKeyList:
    page = await api_key_service.list(session, limit=limit, cursor=cursor, owner=owner, state=state)
    return ApiKeyList(
        items=[ApiKeyRead.model_validate(api_key) for api_key in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{key_id}",
    summary="Get an API key",
    responses=problem_responses(ApiKeyNotFound),
)
async def get_api_key(key_id: KeyId, caller: AdminCaller, session: SessionDep) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await api_key_service.get(session, key_id))


@router.post(
    "/{key_id}/rotate",
    status_code=201,
    summary="Rotate an API key",
    description=(
        "Issues a successor with the same owner, name, environment, scopes, service, tier and "
        "lifetime, returned **once**; the old key keeps working for the overlap (or until its "
        "own earlier expiry). A revoked, expired or already rotated key cannot be rotated "
        "(409). Rotating the bootstrap key: set KASSA_BOOTSTRAP_ADMIN_KEY to the new key "
        "before any gateway restarts, or the restart revokes the new key."
    ),
    responses=problem_responses(ApiKeyNotFound, ApiKeyNotRotatable),
)
async def rotate_api_key(
    key_id: KeyId,
    caller: AdminCaller,
    session: SessionDep,
    secret: KeySecretDep,
    settings: SettingsDep,
    cache: KeyCacheDep,
    request: Request,
    response: Response,
    rotation: ApiKeyRotate | None = None,
) -> ApiKeyRotated:
    overlap = (rotation or ApiKeyRotate()).overlap(settings.key_rotation_overlap_s)
    result = await api_key_service.rotate(session, secret, key_id, overlap, actor=caller.key_id)
    invalidate_after_commit(request, cache, result.stale_key_hashes)
    _never_cached(response)
    return ApiKeyRotated.of_rotation(result.issued.api_key, result.issued.key, result.previous)


@router.post(
    "/{key_id}/revoke",
    summary="Revoke an API key",
    description=(
        "Takes effect at once on every gateway. Revoking a revoked key changes nothing and "
        "answers the same record (the first revoked_at stands)."
    ),
    responses=problem_responses(ApiKeyNotFound),
)
async def revoke_api_key(
    key_id: KeyId,
    caller: AdminCaller,
    session: SessionDep,
    cache: KeyCacheDep,
    request: Request,
) -> ApiKeyRead:
    revocation = await api_key_service.revoke(session, key_id, actor=caller.key_id)
    invalidate_after_commit(request, cache, revocation.stale_key_hashes)
    return ApiKeyRead.model_validate(revocation.api_key)


admin_router = router
