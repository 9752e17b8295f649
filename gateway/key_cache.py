"""The API key hash → principal cache that keeps the database off the hot path.

Two layers: a dict in each gateway process (no I/O on a hit) and, when Redis is configured, a
shared Redis entry so a new process or a cold key costs one Redis read instead of a database
query. Revocation and rotation call :meth:`KeyCache.invalidate`: the local entry goes at once,
the Redis entry is deleted and every gateway process hears about it on a pub/sub channel.

Two races are closed with generations. Locally, a database read that started before an
invalidation must not store its stale answer after it: the process-wide epoch is captured
before the read and the answer is dropped if it moved. In Redis, a per-key generation counter is
incremented on invalidation and a cache write only lands (atomically, in Lua) when the counter
is still what the reader saw. A pub/sub connection that drops may have missed messages, so the
local layer is emptied on every (re)subscription and entries live only seconds while it is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import orjson
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.identity import Caller
from shared.logging import get_logger

log = get_logger(__name__)

CHANNEL = "kassa:gateway:key-invalidations"
ENTRY_PREFIX = "kassa:gateway:key:"
GENERATION_PREFIX = "kassa:gateway:keygen:"
# Unknown hashes are remembered briefly, locally only, so a flood of a well-formed but unknown
# key cannot turn into a flood of database queries.
NEGATIVE_TTL_S = 5.0
# While the invalidation channel is down, other processes' revocations cannot reach this one.
DISCONNECTED_TTL_S = 2.0
MAX_LOCAL_ENTRIES = 50_000

KEY_CACHE = Counter(
    "kassa_gateway_key_cache_total",
    "API key lookups by where the answer came from.",
    ["result"],
)
INVALIDATION_LISTENER_UP = Gauge(
    "kassa_gateway_key_invalidation_listener_up",
    "1 while this process is subscribed to key invalidations in Redis.",
)

# Store the entry only if the key's generation is still the one the reader saw.
_STORE_IF_CURRENT = """
local current = redis.call('GET', KEYS[2]) or '0'
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Principal:
    """What a valid API key stands for, as the hot path needs it."""

    key_id: str
    owner: str
    scopes: frozenset[str]
    service: str | None
    environment: str
    tier: str
    expires_at: float | None  # Unix seconds
    revoked: bool

    def caller(self, request_id: str | None) -> Caller:
        """The identity the gateway vouches for upstream."""
        return Caller(
            key_id=self.key_id,
            owner=self.owner,
            scopes=self.scopes,
            service=self.service,
            request_id=request_id,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "key_id": self.key_id,
                "owner": self.owner,
                "scopes": sorted(self.scopes),
                "service": self.service,
                "environment": self.environment,
                "tier": self.tier,
                "expires_at": self.expires_at,
                "revoked": self.revoked,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Principal:
        data = orjson.loads(raw)
        return cls(
            key_id=data["key_id"],
            owner=data["owner"],
            scopes=frozenset(data["scopes"]),
            service=data["service"],
            environment=data["environment"],
            tier=data["tier"],
            expires_at=data["expires_at"],
            revoked=data["revoked"],
        )


Loader = Callable[[str], Awaitable[Principal | None]]


class KeyCache:
    """Hash → principal, in process and (optionally) in Redis; see the module doc."""

    def __init__(
        self, ttl_s: float, redis: Redis | None = None, subscriber: Redis | None = None
    ) -> None:
        self._ttl_s = ttl_s
        self._redis = redis
        # Pub/sub holds a connection open; it gets a client with patient timeouts.
        self._subscriber = subscriber or redis
        self._local: dict[str, tuple[float, Principal | None]] = {}
        self._epoch = 0
        self._listening = redis is None  # without Redis there is no one else to hear from
        self._store_if_current = redis.register_script(_STORE_IF_CURRENT) if redis else None

    async def get(self, key_hash: str, load: Loader) -> Principal | None:
        """The principal for ``key_hash``: from a cache layer or, on a miss, from ``load``."""
        now = time.monotonic()
        entry = self._local.get(key_hash)
        if entry is not None and entry[0] > now:
            KEY_CACHE.labels("negative_hit" if entry[1] is None else "local_hit").inc()
            return entry[1]
        epoch = self._epoch
        principal, generation = await self._redis_get(key_hash)
        if principal is not None:
            KEY_CACHE.labels("redis_hit").inc()
            self._remember(key_hash, principal, epoch)
            return principal
        KEY_CACHE.labels("miss").inc()
        principal = await load(key_hash)
        self._remember(key_hash, principal, epoch)
        if principal is not None and generation is not None:
            await self._redis_store(key_hash, principal, generation)
        return principal

    async def invalidate(self, key_hashes: Iterable[str]) -> None:
        """Forget these keys here, in Redis, and in every other gateway process."""
        hashes = list(key_hashes)
        if not hashes:
            return
        self._forget(hashes)
        if self._redis is None:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key_hash in hashes:
                    pipe.incr(GENERATION_PREFIX + key_hash)
                    pipe.pexpire(GENERATION_PREFIX + key_hash, int(self._ttl_s * 4000))
                    pipe.delete(ENTRY_PREFIX + key_hash)
                pipe.publish(CHANNEL, orjson.dumps(hashes))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Entries expire within the TTL regardless; say loudly that it may take that long.
            log.error("key_invalidation_not_published", error=str(exc), keys=len(hashes))

    def clear_local(self) -> None:
        """Drop every local entry (after missing invalidations, or in tests)."""
        self._epoch += 1
        self._local.clear()

    async def listen(self) -> None:
        """Apply other processes' invalidations until cancelled; resubscribes after failures."""
        if self._subscriber is None:
            return
        backoff = 0.5
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("key_invalidation_listener_down", error=str(exc))
            self._set_listening(False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _listen_once(self) -> None:
        assert self._subscriber is not None
        pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            # Whatever was published while we were not subscribed is lost: start clean.
            self.clear_local()
            self._set_listening(True)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self._forget(orjson.loads(message["data"]))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _set_listening(self, up: bool) -> None:
        if up != self._listening:
            self._listening = up
            if not up:
                self.clear_local()
        INVALIDATION_LISTENER_UP.set(1 if up else 0)

    def _forget(self, hashes: Iterable[str]) -> None:
        self._epoch += 1
        for key_hash in hashes:
            self._local.pop(key_hash, None)

    def _remember(self, key_hash: str, principal: Principal | None, epoch: int) -> None:
        if epoch != self._epoch:
            return  # invalidated while we were reading: the answer may predate it
        if len(self._local) >= MAX_LOCAL_ENTRIES:
            self._local.clear()
        ttl = NEGATIVE_TTL_S if principal is None else self._ttl_s
        if not self._listening:
            ttl = min(ttl, DISCONNECTED_TTL_S)
        self._local[key_hash] = (time.monotonic() + ttl, principal)

    async def _redis_get(self, key_hash: str) -> tuple[Principal | None, str | None]:
        """The Redis entry and the key's generation; (None, None) when Redis is unusable."""
        if self._redis is None:
            return None, None
        try:
            raw, generation = await self._redis.mget(
                ENTRY_PREFIX + key_hash, GENERATION_PREFIX + key_hash
            )
        except (RedisError, OSError) as exc:
            log.warning("key_cache_redis_unavailable", error=str(exc))
            return None, None
        principal = Principal.from_json(_as_bytes(raw)) if raw is not None else None
        return principal, (_as_bytes(generation).decode() if generation is not None else "0")

    async def _redis_store(self, key_hash: str, principal: Principal, generation: str) -> None:
        assert self._store_if_current is not None
        try:
            await self._store_if_current(
                keys=[ENTRY_PREFIX + key_hash, GENERATION_PREFIX + key_hash],
                args=[generation, principal.to_json(), int(self._ttl_s * 1000)],
            )
        except (RedisError, OSError) as exc:
            log.warning("key_cache_redis_unavailable", error=str(exc))


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
