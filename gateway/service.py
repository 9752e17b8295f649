"""API key rules: what makes a presented key valid, and the operator's bootstrap key."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import ApiKey
from gateway.repository import ApiKeyRepository
from shared.api_key_format import display_prefix, hash_api_key, key_environment
from shared.identity import ADMIN_SCOPE
from shared.ids import new_id_str
from shared.logging import get_logger

log = get_logger(__name__)

BOOTSTRAP_OWNER = "bootstrap"


class ApiKeyService:
    """The lifecycle of API keys."""

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
