"""API key rules: issuing, listing, rotating and revoking keys, and the operator's bootstrap key.

Shared by the admin API (``gateway/admin.py``) and ``kassa keys`` (``gateway/keys_cli.py``).
Nothing here commits: the request (or the command) commits, and only then do callers drop the
hashes a result names from the key cache, so no reader can re-cache a row that is rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import GatewaySettings
from gateway.models import ApiKey
from gateway.repository import ApiKeyRepository
from gateway.schemas import ApiKeyCreate, KeyState, as_utc, key_state
from shared.api_key_format import (
    KeyEnvironment,
    display_prefix,
    generate_api_key,
    hash_api_key,
    key_environment,
)
from shared.errors import Conflict, NotFound
from shared.identity import ADMIN_SCOPE
from shared.ids import new_id_str
from shared.logging import get_logger

log = get_logger(__name__)

BOOTSTRAP_OWNER = "bootstrap"


class ApiKeyNotFound(NotFound):
    slug = "api-key-not-found"
    title = "API key not found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"There is no API key with id {key_id!r}.", key_id=key_id)


class ApiKeyNotRotatable(Conflict):
    slug = "api-key-not-rotatable"
    title = "API key cannot be rotated"


class ApiKeySecretMissing(RuntimeError):
    """The server secret keys are hashed under is not configured."""


@dataclass(frozen=True)
class IssuedKey:
    """A key just made: its record, and the key itself, which exists nowhere else."""

    api_key: ApiKey
    key: str


@dataclass(frozen=True)
class Rotation:
    """A rotation: the successor (with its key) and the old key, now expiring."""

    issued: IssuedKey
    previous: ApiKey
    stale_key_hashes: tuple[str, ...]  # drop from the key cache once committed


@dataclass(frozen=True)
class Revocation:
    """A revoked key; ``newly_revoked`` is False when it already was."""

    api_key: ApiKey
    newly_revoked: bool
    stale_key_hashes: tuple[str, ...]  # drop from the key cache once committed


@dataclass(frozen=True)
class ApiKeyPage:
    """One page of keys, newest first; ``next_cursor`` continues it."""

    items: Sequence[ApiKey]
    next_cursor: str | None


def api_key_secret(settings: GatewaySettings) -> bytes:
    """The HMAC secret keys are stored under (GATEWAY_API_KEY_SECRET)."""
    if settings.api_key_secret is None or not settings.api_key_secret.get_secret_value():
        raise ApiKeySecretMissing("GATEWAY_API_KEY_SECRET is not set")
    return settings.api_key_secret.get_secret_value().encode()


def _now() -> datetime:
    return datetime.now(UTC)


def _new_row(key: str, secret: bytes, now: datetime, **record: object) -> ApiKey:
    return ApiKey(
        id=new_id_str(),
        key_hash=hash_api_key(key, secret),
        display_prefix=display_prefix(key),
        created_at=now,
        **record,
    )


class ApiKeyService:
    """The lifecycle of API keys."""

    async def create(
        self, session: AsyncSession, secret: bytes, spec: ApiKeyCreate, *, actor: str
    ) -> IssuedKey:
        """Issue a new key as ``spec`` describes; the key is in the result and nowhere else."""
        now = _now()
        key = generate_api_key(spec.environment)
        api_key = _new_row(
            key,
            secret,
            now,
            owner=spec.owner,
            name=spec.name,
            environment=spec.environment,
            scopes=list(spec.scopes),
            service=spec.service,
            rate_limit_tier=spec.rate_limit_tier,
            expires_at=spec.expires_at,
        )
        await ApiKeyRepository(session).add(api_key)
        log.info(
            "api_key_created",
            key_id=api_key.id,
            display_prefix=api_key.display_prefix,
            owner=api_key.owner,
            scopes=api_key.scopes,
            actor=actor,
        )
        return IssuedKey(api_key=api_key, key=key)

    async def get(self, session: AsyncSession, key_id: str) -> ApiKey:
        """The key ``key_id``; :class:`ApiKeyNotFound` when there is none."""
        api_key = await ApiKeyRepository(session).get(key_id)
        if api_key is None:
            raise ApiKeyNotFound(key_id)
        return api_key

    async def list(
        self,
        session: AsyncSession,
        *,
        limit: int,
        cursor: str | None = None,
        owner: str | None = None,
        state: KeyState | None = None,
    ) -> ApiKeyPage:
        """A page of keys, newest first; ``cursor`` is a previous page's ``next_cursor``."""
        rows = await ApiKeyRepository(session).page(
            now=_now(), limit=limit + 1, before_id=cursor, owner=owner, state=state
        )
        items = rows[:limit]
        # The cursor is the last id shown: ids are time-ordered, so the page after it is
        # stable under concurrent inserts (new keys sort before the first page).
        next_cursor = items[-1].id if len(rows) > limit else None
        return ApiKeyPage(items=items, next_cursor=next_cursor)

    async def rotate(
        self,
        session: AsyncSession,
        secret: bytes,
        key_id: str,
        overlap: timedelta,
        *,
        actor: str,
    ) -> Rotation:
        """Issue a successor of ``key_id`` and let the old key live ``overlap`` longer at most.

        The successor copies owner, name, environment, scopes, service and tier; a key made
        with a lifetime gets the same lifetime from now. Only an active key that was never
        rotated can be; of concurrent rotations exactly one succeeds, the others get 409.
        """
        now = _now()
        repository = ApiKeyRepository(session)
        old = await self.get(session, key_id)
        _check_rotatable(old, now)
        key = generate_api_key(_environment(old))
        successor = _new_row(
            key,
            secret,
            now,
            owner=old.owner,
            name=old.name,
            environment=old.environment,
            scopes=list(old.scopes),
            service=old.service,
            rate_limit_tier=old.rate_limit_tier,
            expires_at=_successor_expiry(old, now),
        )
        old_expiry = _overlap_end(old, now + overlap)
        if not await repository.mark_rotated(old.id, successor.id, old_expiry, now):
            # Lost a race: read what the winner (or a revocation) left to say why.
            _check_rotatable(await self._fresh(repository, key_id), now)
            raise ApiKeyNotRotatable(f"The API key {key_id} was changed concurrently; retry.")
        await repository.add(successor)
        previous = await self._fresh(repository, key_id)
        log.info(
            "api_key_rotated",
            key_id=old.id,
            successor_id=successor.id,
            display_prefix=successor.display_prefix,
            old_key_expires_at=old_expiry.isoformat(),
            actor=actor,
        )
        return Rotation(
            issued=IssuedKey(api_key=successor, key=key),
            previous=previous,
            stale_key_hashes=(old.key_hash,),
        )

    async def revoke(self, session: AsyncSession, key_id: str, *, actor: str) -> Revocation:
        """Revoke ``key_id`` now; revoking it again changes nothing (the first time stands)."""
        repository = ApiKeyRepository(session)
        newly_revoked = await repository.revoke(key_id, _now())
        api_key = await self._fresh(repository, key_id)
        if newly_revoked:
            log.info(
                "api_key_revoked",
                key_id=api_key.id,
                display_prefix=api_key.display_prefix,
                actor=actor,
            )
        # Invalidate even on a repeat: a cache that missed the first invalidation heals.
        return Revocation(
            api_key=api_key, newly_revoked=newly_revoked, stale_key_hashes=(api_key.key_hash,)
        )

    async def ensure_bootstrap_key(self, session: AsyncSession, key: str, secret: bytes) -> None:
        """Make ``key`` the one live bootstrap admin key (idempotent across replicas)."""
        environment = key_environment(key)
        if environment is None:
            raise ValueError("KASSA_BOOTSTRAP_ADMIN_KEY is not a valid Kassa API key")
        key_hash = hash_api_key(key, secret)
        repository = ApiKeyRepository(session)
        now = _now()
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

    @staticmethod
    async def _fresh(repository: ApiKeyRepository, key_id: str) -> ApiKey:
        api_key = await repository.get(key_id, fresh=True)
        if api_key is None:
            raise ApiKeyNotFound(key_id)
        return api_key


def _environment(api_key: ApiKey) -> KeyEnvironment:
    return "live" if api_key.environment == "live" else "test"


def _check_rotatable(api_key: ApiKey, now: datetime) -> None:
    """409 unless ``api_key`` is active and was never rotated, saying which it is."""
    state = key_state(api_key.revoked_at, api_key.expires_at, now)
    if api_key.replaced_by is not None:
        raise ApiKeyNotRotatable(
            f"The API key {api_key.id} was already rotated; rotate its successor "
            f"{api_key.replaced_by} instead.",
            replaced_by=api_key.replaced_by,
        )
    if state is not KeyState.ACTIVE:
        raise ApiKeyNotRotatable(
            f"The API key {api_key.id} is {state.value}; only an active key can be rotated. "
            "Create a new key instead."
        )


def _successor_expiry(old: ApiKey, now: datetime) -> datetime | None:
    """The same lifetime as the old key had, counted from now (none if it had none)."""
    if old.expires_at is None:
        return None
    return now + (as_utc(old.expires_at) - as_utc(old.created_at))


def _overlap_end(old: ApiKey, overlap_end: datetime) -> datetime:
    """The end of the overlap, unless the old key was to expire earlier anyway."""
    if old.expires_at is not None and as_utc(old.expires_at) < overlap_end:
        return as_utc(old.expires_at)
    return overlap_end


api_key_service = ApiKeyService()
