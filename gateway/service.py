"""API key rules: what makes a presented key valid, and the operator's bootstrap key."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import ApiKey
from gateway.repository import ApiKeyRepository
from shared.api_key_format import display_prefix, hash_api_key, key_environment
from shared.errors import BadRequest, Unauthorized
from shared.identity import ADMIN_SCOPE, Caller
from shared.ids import new_id_str
from shared.logging import get_logger

log = get_logger(__name__)

BOOTSTRAP_OWNER = "bootstrap"
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="kassa"'}


class InvalidApiKey(Unauthorized):
    slug = "invalid-api-key"
    title = "Missing or invalid API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers=dict(WWW_AUTHENTICATE))


class ApiKeyInQueryString(BadRequest):
    slug = "api-key-in-query-string"
    title = "API key in the query string"


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class ApiKeyService:
    """Authenticates presented keys and keeps the bootstrap admin key."""

    async def authenticate(
        self, session: AsyncSession, presented: str | None, secret: bytes, request_id: str | None
    ) -> Caller:
        """The caller a presented key belongs to, or :class:`InvalidApiKey` saying why not."""
        if not presented:
            raise InvalidApiKey(
                "Send an API key in 'Authorization: Bearer <key>' or the 'X-API-Key' header."
            )
        # The checksum rejects typos and invented keys without touching the database.
        if key_environment(presented) is None:
            raise InvalidApiKey("The API key is malformed (bad prefix or checksum).")
        api_key = await ApiKeyRepository(session).get_by_hash(hash_api_key(presented, secret))
        if api_key is None:
            raise InvalidApiKey("The API key is not recognised.")
        now = datetime.now(UTC)
        if api_key.revoked_at is not None:
            raise InvalidApiKey("The API key has been revoked.")
        expires_at = _aware(api_key.expires_at)
        if expires_at is not None and expires_at <= now:
            raise InvalidApiKey("The API key has expired.")
        return Caller(
            key_id=api_key.id,
            owner=api_key.owner,
            scopes=frozenset(api_key.scopes),
            service=api_key.service,
            request_id=request_id,
        )

    async def ensure_bootstrap_key(self, session: AsyncSession, key: str, secret: bytes) -> None:
        """Make ``key`` the one live bootstrap admin key (idempotent across replicas)."""
        environment = key_environment(key)
        if environment is None:
            raise ValueError("KASSA_BOOTSTRAP_ADMIN_KEY is not a valid Kassa API key")
        key_hash = hash_api_key(key, secret)
        repository = ApiKeyRepository(session)
        now = datetime.now(UTC)
        if await repository.get_by_hash(key_hash) is None:
            try:
                async with session.begin_nested():
                    await repository.add(
                        ApiKey(
                            id=new_id_str(),
                            key_hash=key_hash,
                            display_prefix=display_prefix(key),
                            owner=BOOTSTRAP_OWNER,
                            name="bootstrap admin key",
                            environment=environment,
                            scopes=[ADMIN_SCOPE],
                            rate_limit_tier="default",
                            created_at=now,
                        )
                    )
            except IntegrityError:
                pass  # another replica inserted it first
        revoked = await repository.revoke_owned_except(BOOTSTRAP_OWNER, key_hash, now)
        log.info("bootstrap_key_ensured", display_prefix=display_prefix(key), revoked=revoked)


api_key_service = ApiKeyService()
