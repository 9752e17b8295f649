"""Rate limits by GCRA: one timestamp per client, exact retry-after, atomic in Redis.

The generic cell rate algorithm keeps, per limited identity, the *theoretical arrival time*
(TAT) of the next request. A quota of ``limit`` per ``window`` spaces requests ``T = window /
limit`` apart and tolerates a burst of ``limit``: a request is allowed when ``TAT + T - now``
stays within ``window``. In Redis the whole decision is one Lua script reading Redis's own
clock (``TIME``), so every gateway process sharing that Redis holds one global limit and no
process's clock matters. Without Redis, or while Redis is down on a fail-open route class,
the same arithmetic runs in process.

Headers follow draft-ietf-httpapi-ratelimit-headers-11 (``RateLimit-Policy`` and ``RateLimit``)
plus the older ``RateLimit-Limit``/``-Remaining``/``-Reset`` that many clients still read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.errors import KassaError, ServiceUnavailable
from shared.logging import get_logger

log = get_logger(__name__)

MICROS = 1_000_000
# After a Redis failure, the hot path does not try Redis again for this long: one timeout per
# second is a cost, one per request would be an outage.
REDIS_RETRY_AFTER_S = 1.0
LOCAL_MAX_ENTRIES = 100_000

RATE_LIMIT_DECISIONS = Counter(
    "kassa_gateway_rate_limit_total",
    "Rate-limit decisions by route class and outcome.",
    ["route_class", "decision"],
)
RATE_LIMIT_FALLBACKS = Counter(
    "kassa_gateway_rate_limit_fallback_total",
    "Decisions taken without Redis because it failed: open (local limiter) or closed (503).",
    ["route_class", "mode"],
)
RATE_LIMIT_REDIS_UP = Gauge(
    "kassa_gateway_rate_limit_redis_up", "1 while the shared Redis limiter answers."
)

# KEYS[1]: the identity's TAT key. ARGV: interval T, window (both microseconds).
# Returns {allowed, remaining, reset_us, retry_after_us}.
_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > window then
  return {0, 0, tat - now, new_tat - now - window}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((window - (new_tat - now)) / interval), new_tat - now, 0}
"""


class RateLimited(KassaError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class RateLimiterUnavailable(ServiceUnavailable):
    slug = "rate-limiter-unavailable"
    title = "Rate limiter unavailable"


@dataclass(frozen=True, slots=True)
class Quota:
    """``limit`` requests per ``window_s`` seconds under the policy ``name``."""

    name: str
    limit: int
    window_s: int

    @property
    def interval_us(self) -> int:
        return max(1, self.window_s * MICROS // self.limit)

    @property
    def window_us(self) -> int:
        return self.window_s * MICROS


@dataclass(frozen=True, slots=True)
class Decision:
    """One request's verdict and what the client is told about its quota."""

    quota: Quota
    allowed: bool
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The RateLimit headers (draft -11 and the older trio) for this reply."""
        name, limit = self.quota.name, self.quota.limit
        values = [
            (b"ratelimit-policy", f'"{name}";q={limit};w={self.quota.window_s}'),
            (b"ratelimit", f'"{name}";r={self.remaining};t={self.reset_s}'),
            (b"ratelimit-limit", str(limit)),
            (b"ratelimit-remaining", str(self.remaining)),
            (b"ratelimit-reset", str(self.reset_s)),
        ]
        if not self.allowed:
            values.append((b"retry-after", str(self.retry_after_s)))
        return [(header, value.encode()) for header, value in values]

    def refusal(self) -> RateLimited:
        """The 429 problem for a refused request, with every header."""
        return RateLimited(
            f"The '{self.quota.name}' limit of {self.quota.limit} requests per "
            f"{self.quota.window_s}s is used up; retry in {self.retry_after_s}s.",
            headers={name.decode(): value.decode() for name, value in self.headers()},
        )


def _decision(quota: Quota, allowed: int, remaining: int, reset_us: int, retry_us: int) -> Decision:
    return Decision(
        quota=quota,
        allowed=bool(allowed),
        remaining=max(0, int(remaining)),
        reset_s=math.ceil(int(reset_us) / MICROS),
        retry_after_s=max(1, math.ceil(int(retry_us) / MICROS)) if not allowed else 0,
    )


class LocalGcra:
    """The same algorithm in one process (the embedded default and the fail-open fallback)."""

    def __init__(self) -> None:
        self._tats: dict[str, int] = {}

    def check(self, key: str, quota: Quota) -> Decision:
        now = time.monotonic_ns() // 1000
        tat = max(self._tats.get(key, 0), now)
        new_tat = tat + quota.interval_us
        if new_tat - now > quota.window_us:
            return _decision(quota, 0, 0, tat - now, new_tat - now - quota.window_us)
        if len(self._tats) >= LOCAL_MAX_ENTRIES:
            self._prune(now)
        self._tats[key] = new_tat
        remaining = (quota.window_us - (new_tat - now)) // quota.interval_us
        return _decision(quota, 1, remaining, new_tat - now, 0)

    def _prune(self, now: int) -> None:
        # An entry whose TAT has passed carries no state: the identity starts fresh anyway.
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}


class RateLimiter:
    """Decides with Redis when configured; falls back per route class when Redis fails."""

    def __init__(self, redis: Redis | None, fail_closed: frozenset[str]) -> None:
        self._redis = redis
        self._script = redis.register_script(_GCRA) if redis is not None else None
        self._fail_closed = fail_closed
        self._local = LocalGcra()
        self._redis_down_until = 0.0
        RATE_LIMIT_REDIS_UP.set(1 if redis is not None else 0)

    async def check(self, route_class: str, identity: str, quota: Quota) -> Decision:
        """The decision for one request of ``identity`` under ``quota``."""
        key = f"kassa:rl:{route_class}:{quota.name}:{identity}"
        decision = await self._shared(route_class, key, quota)
        if decision is None:
            decision = self._local.check(key, quota)
        RATE_LIMIT_DECISIONS.labels(route_class, "allowed" if decision.allowed else "limited").inc()
        return decision

    async def _shared(self, route_class: str, key: str, quota: Quota) -> Decision | None:
        if self._script is None:
            return None
        if time.monotonic() >= self._redis_down_until:
            try:
                result = await self._script(keys=[key], args=[quota.interval_us, quota.window_us])
            except (RedisError, OSError) as exc:
                self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_S
                RATE_LIMIT_REDIS_UP.set(0)
                log.error("rate_limit_redis_unavailable", error=str(exc))
            else:
                RATE_LIMIT_REDIS_UP.set(1)
                return _decision(quota, *(int(value) for value in result))
        if route_class in self._fail_closed:
            RATE_LIMIT_FALLBACKS.labels(route_class, "closed").inc()
            raise RateLimiterUnavailable(
                "The rate limiter's store is unreachable and this route fails closed; "
                "retry shortly.",
                headers={"Retry-After": str(math.ceil(REDIS_RETRY_AFTER_S))},
            )
        RATE_LIMIT_FALLBACKS.labels(route_class, "open").inc()
        return None
