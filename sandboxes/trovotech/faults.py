"""The faults in force and the dice that decide, per request or delivery, which ones strike.

The configured faults (``TROVOTECH_SANDBOX_FAULTS__...``) are the starting point;
``POST /sandbox/faults`` changes any of them at run time and ``DELETE /sandbox/faults`` goes
back. Decisions are synchronous (no ``await`` between reading a counter and decrementing it),
so concurrent requests on the event loop never both take the last ``fail_next``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sandboxes.trovotech.config import Faults

# Names reported in X-TrovoTech-Sandbox-Fault and the request log.
LATENCY = "latency"
TIMEOUT = "timeout"
ERROR = "error"
ERROR_AFTER_EFFECT = "error_after_effect"


@dataclass(frozen=True)
class FaultPlan:
    """What happens to one API request."""

    latency_s: float = 0.0
    timeout_s: float | None = None
    error: bool = False
    error_after_effect: bool = False
    error_status: int = 503

    @property
    def names(self) -> list[str]:
        """The faults this plan applies, for headers and logs."""
        names = [LATENCY] if self.latency_s else []
        if self.timeout_s is not None:
            names.append(TIMEOUT)
        if self.error:
            names.append(ERROR_AFTER_EFFECT if self.error_after_effect else ERROR)
        return names


class FaultState:
    """The faults in force, and a seeded random source to apply them."""

    def __init__(self, configured: Faults) -> None:
        self.configured = configured
        self.current = configured.model_copy(deep=True)
        self._dice = random.Random(configured.seed)

    def update(self, patch: Faults) -> Faults:
        """Change the fields ``patch`` sets (explicitly), keep the others."""
        changes = patch.model_dump(include=patch.model_fields_set)
        self.current = Faults.model_validate({**self.current.model_dump(), **changes})
        if "seed" in patch.model_fields_set:
            self._dice = random.Random(self.current.seed)
        return self.current

    def reset(self) -> Faults:
        """Back to the configured faults."""
        self.current = self.configured.model_copy(deep=True)
        self._dice = random.Random(self.configured.seed)
        return self.current

    def plan(self, path: str) -> FaultPlan:
        """Roll the dice (and spend the counters) for one API request to ``path``."""
        faults = self.current
        if faults.paths and not any(path.endswith(suffix) for suffix in faults.paths):
            return FaultPlan()
        timeout_s: float | None = None
        if faults.timeout_next > 0:
            faults.timeout_next -= 1
            timeout_s = faults.timeout_s
        elif self._roll(faults.timeout_rate):
            timeout_s = faults.timeout_s
        error = False
        if faults.fail_next > 0:
            faults.fail_next -= 1
            error = True
        elif self._roll(faults.error_rate):
            error = True
        return FaultPlan(
            latency_s=faults.latency_ms / 1000,
            timeout_s=timeout_s,
            error=error,
            error_after_effect=error and faults.error_after_effect,
            error_status=faults.error_status,
        )

    def duplicate_webhook(self) -> bool:
        """Deliver this event twice?"""
        return self._roll(self.current.webhook_duplicate_rate)

    def bad_signature(self) -> bool:
        """Sign this delivery with the wrong secret?"""
        return self._roll(self.current.webhook_bad_signature_rate)

    def fail_payout(self) -> bool:
        """Make this payout end in ``payout.failed``?"""
        if self.current.payout_fail_next > 0:
            self.current.payout_fail_next -= 1
            return True
        return self._roll(self.current.payout_fail_rate)

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._dice.random() < rate
