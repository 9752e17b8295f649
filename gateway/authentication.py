"""Who is calling: a presented API key checked against the cache and, on a miss, the database.

The checksum rejects typos and invented keys before any lookup; the lookup is by HMAC-SHA256
under the server secret (never the key itself); expiry is checked on every request against the
cached expiry, so a cache never extends a key's life.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.key_cache import KeyCache, Principal
from gateway.models import ApiKey
from gateway.repository import ApiKeyRepository
from shared.api_key_format import hash_api_key, key_environment
from shared.errors import BadRequest, Forbidden, Unauthorized

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="kassa"'}
# Query parameter names under which clients put keys (and logs then keep them).
QUERY_KEY_NAMES = frozenset({"api_key", "apikey", "api-key", "key", "access_token", "token"})

AUTH_FAILURES = Counter(
    "kassa_gateway_auth_failures_total",
    "Requests refused by key authentication or authorisation, by reason.",
    ["reason"],
)


class InvalidApiKey(Unauthorized):
    slug = "invalid-api-key"
    title = "Missing or invalid API key"

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail, headers=dict(WWW_AUTHENTICATE))
        AUTH_FAILURES.labels(reason).inc()


class ApiKeyInQueryString(BadRequest):
    slug = "api-key-in-query-string"
    title = "API key in the query string"


class InsufficientScope(Forbidden):
    slug = "insufficient-scope"
    title = "API key lacks the scope this route requires"


class CallerNotPermitted(Forbidden):
    slug = "caller-not-permitted"
    title = "This route admits only certain service identities"


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key from ``Authorization: Bearer`` or ``X-API-Key`` (lower-case header names)."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


def refuse_key_in_query(query_string: bytes) -> None:
    """Keys in URLs end up in access logs and browser history: refuse them, saying why."""
    if not query_string:
        return
    for pair in query_string.split(b"&"):
        name = pair.partition(b"=")[0].decode("latin-1").lower()
        if name in QUERY_KEY_NAMES:
            AUTH_FAILURES.labels("key_in_query").inc()
            raise ApiKeyInQueryString(
                f"API keys are not accepted in the query string (parameter '{name}'), where "
                "they leak into logs and browser history; send the key in "
                "'Authorization: Bearer <key>' or the 'X-API-Key' header."
            )


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def principal_of(api_key: ApiKey) -> Principal:
    """The cacheable view of a key row."""
    return Principal(
        key_id=api_key.id,
        owner=api_key.owner,
        scopes=frozenset(api_key.scopes),
        service=api_key.service,
        environment=api_key.environment,
        tier=api_key.rate_limit_tier,
        expires_at=_epoch(api_key.expires_at),
        revoked=api_key.revoked_at is not None,
    )


class Authenticator:
    """Turns a presented key into a :class:`Principal`, or says precisely why not."""

    def __init__(
        self, secret: bytes, cache: KeyCache, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self._secret = secret
        self._cache = cache
        self._sessions = sessions

    def key_hash(self, presented: str) -> str:
        return hash_api_key(presented, self._secret)

    async def authenticate(self, presented: str | None) -> Principal:
        """The principal behind ``presented``; :class:`InvalidApiKey` when there is none."""
        if not presented:
            raise InvalidApiKey(
                "Send an API key in 'Authorization: Bearer <key>' or the 'X-API-Key' header.",
                reason="missing",
            )
        if key_environment(presented) is None:
            raise InvalidApiKey(
                "The API key is malformed (bad prefix or checksum).", reason="malformed"
            )
        principal = await self._cache.get(self.key_hash(presented), self._load)
        if principal is None:
            raise InvalidApiKey("The API key is not recognised.", reason="unknown")
        if principal.revoked:
            raise InvalidApiKey("The API key has been revoked.", reason="revoked")
        if principal.expires_at is not None and principal.expires_at <= time.time():
            raise InvalidApiKey("The API key has expired.", reason="expired")
        return principal

    async def _load(self, key_hash: str) -> Principal | None:
        async with self._sessions() as session:
            api_key = await ApiKeyRepository(session).get_by_hash(key_hash)
        return principal_of(api_key) if api_key is not None else None


def authorise(principal: Principal, any_of: frozenset[str], callers: frozenset[str]) -> None:
    """Refuse with 403 unless one scope in ``any_of`` is held and the service is admitted."""
    if callers and principal.service not in callers and "admin" not in principal.scopes:
        AUTH_FAILURES.labels("caller_not_permitted").inc()
        raise CallerNotPermitted(
            "This route admits only the service identities "
            f"{', '.join(sorted(callers))}; the key's service is {principal.service or 'none'}."
        )
    if not any_of:
        return
    caller = principal.caller(None)
    if not any(caller.has_scope(scope) for scope in any_of):
        AUTH_FAILURES.labels("insufficient_scope").inc()
        raise InsufficientScope(
            f"This route requires one of the scopes {', '.join(sorted(any_of))}; "
            f"the key has {', '.join(sorted(principal.scopes)) or 'none'}."
        )
