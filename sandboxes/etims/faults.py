"""Faults on demand: latency, error replies and the reply that never comes.

A plan holds an added latency and an ordered list of rules. Each eTIMS call draws at most one
fault: the first rule that matches the operation and fires (a rule fires on its next ``count``
matching calls, each with probability ``rate``; without ``count`` it never runs out).

- ``894``, ``990``, ``999``: answered at once; nothing is stored.
- ``timeout_after_commit``: the operation runs and commits (a sale is stored, numbered and
  counted), then the reply waits ``hang_ms`` before it is sent, beyond the client's timeout.
- ``drop_after_commit``: the operation commits, then the connection closes after the status
  line, with no body.

Both after-commit faults leave the client not knowing whether KRA has the sale: it must ask
``selectInvoiceDetails`` (which finds it) rather than resend blindly (which answers 994).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class FaultKind(enum.StrEnum):
    """What a fault does to a call."""

    COMMUNICATION_ERROR = "894"
    TOO_MANY_REQUESTS = "990"
    UNKNOWN_ERROR = "999"
    TIMEOUT_AFTER_COMMIT = "timeout_after_commit"
    DROP_AFTER_COMMIT = "drop_after_commit"

    @property
    def after_commit(self) -> bool:
        """Whether the operation runs (and commits) before the fault strikes."""
        return self in (FaultKind.TIMEOUT_AFTER_COMMIT, FaultKind.DROP_AFTER_COMMIT)


@dataclass
class FaultRule:
    """One kind of fault, for some operations, a number of times or at a rate."""

    kind: FaultKind
    remaining: int | None = None  # None: unlimited
    rate: float = 1.0
    operations: frozenset[str] | None = None  # OSCU operation names; None: every operation
    hang_ms: int | None = None  # overrides the plan's for timeout_after_commit
    fired: int = 0

    def matches(self, operation: str) -> bool:
        """Whether the rule applies to ``operation`` and has firings left."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        return self.operations is None or operation in self.operations


@dataclass
class FaultPlan:
    """The sandbox's current faults."""

    latency_ms: int = 0
    hang_ms: int = 5_000
    rules: list[FaultRule] = field(default_factory=list)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # fault injection, not secrets

    @classmethod
    def from_rates(
        cls, latency_ms: int, hang_ms: int, rates: Mapping[str, float], seed: int | None
    ) -> FaultPlan:
        """The plan the settings describe: each kind at its rate, for every operation."""
        rules = [FaultRule(FaultKind(kind), rate=rate) for kind, rate in rates.items() if rate]
        return cls(latency_ms=latency_ms, hang_ms=hang_ms, rules=rules, seed=seed)

    def replace(self, latency_ms: int, hang_ms: int | None, rules: Iterable[FaultRule]) -> None:
        """Install a new latency and rule list (the random sequence continues)."""
        self.latency_ms = latency_ms
        if hang_ms is not None:
            self.hang_ms = hang_ms
        self.rules = list(rules)

    def draw(self, operation: str) -> FaultRule | None:
        """The fault for this call of ``operation``, if any (consumes a firing)."""
        for rule in self.rules:
            if not rule.matches(operation):
                continue
            if rule.rate < 1.0 and self._random.random() >= rule.rate:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.fired += 1
            return rule
        return None

    def hang_seconds(self, rule: FaultRule) -> float:
        """How long a timeout-after-commit reply is held back."""
        return (rule.hang_ms if rule.hang_ms is not None else self.hang_ms) / 1000
