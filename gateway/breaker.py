"""A circuit breaker per upstream: stop sending to a service that keeps failing.

Closed: requests flow; ``failures`` consecutive failures (unreachable, timed out, or answering
502/503/504) open it. Open: requests are refused at once with 503 and ``Retry-After`` for
``cooldown_s``, so a dead service costs callers nothing and gets room to recover. Half-open:
after the cool-down one probe request goes through; its success closes the circuit, its
failure opens it for another cool-down. The breaker is per process, like Envoy's outlier
detection: each gateway replica learns on its own, without a shared store on the hot path.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from shared.errors import ServiceUnavailable
from shared.logging import get_logger

log = get_logger(__name__)

BREAKER_STATE = Gauge(
    "kassa_gateway_breaker_state",
    "Circuit state per upstream: 0 closed, 1 half-open, 2 open.",
    ["upstream"],
)
BREAKER_TRANSITIONS = Counter(
    "kassa_gateway_breaker_transitions_total",
    "Circuit state changes per upstream.",
    ["upstream", "to"],
)


class State(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpen(ServiceUnavailable):
    slug = "upstream-circuit-open"
    title = "Upstream service temporarily unavailable"


class CircuitBreaker:
    """The breaker of one upstream (see the module doc)."""

    def __init__(
        self,
        upstream: str,
        failures: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._state = State.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        BREAKER_STATE.labels(upstream).set(State.CLOSED)

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self._cooldown_s:
            return State.HALF_OPEN
        return self._state

    def admit(self) -> None:
        """Let a request through, or raise :class:`CircuitOpen` saying when to come back."""
        state = self.state
        if state is State.CLOSED:
            return
        if state is State.HALF_OPEN and not self._probe_in_flight:
            self._move(State.HALF_OPEN)
            self._probe_in_flight = True
            return
        wait = max(1, math.ceil(self._cooldown_s - (self._clock() - self._opened_at)))
        raise CircuitOpen(
            f"The {self.upstream} service failed repeatedly; the gateway stopped sending to it "
            f"for a while. Retry in {wait}s.",
            headers={"Retry-After": str(wait)},
        )

    def record_success(self) -> None:
        self._consecutive_failures = 0
        self._probe_in_flight = False
        if self._state is not State.CLOSED:
            self._move(State.CLOSED)

    def record_failure(self) -> None:
        self._consecutive_failures += 1
        probe_failed = self._probe_in_flight
        self._probe_in_flight = False
        tripped = self._consecutive_failures >= self._threshold and self._state is not State.OPEN
        if probe_failed or tripped:
            self._opened_at = self._clock()
            self._move(State.OPEN)

    def release_probe(self) -> None:
        """A probe ended without a verdict (the client went away): let another one try."""
        self._probe_in_flight = False

    def _move(self, to: State) -> None:
        if to is self._state:
            return
        log.warning("circuit_state_changed", upstream=self.upstream, to=to.name.lower())
        self._state = to
        BREAKER_STATE.labels(self.upstream).set(to)
        BREAKER_TRANSITIONS.labels(self.upstream, to.name.lower()).inc()
