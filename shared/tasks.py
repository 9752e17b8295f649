"""Background work in a service's own process: periodic steps started and stopped by the lifespan.

Each step is one unit of work (typically one transaction) that claims what it does in the
database, so running it in every replica at once is safe. A failing step is logged and counted,
and the loop goes on: a database outage must not kill the task for the life of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from shared.logging import get_logger

log = get_logger(__name__)

TASK_RUNS = Counter(
    "kassa_task_runs_total",
    "Background task steps run, by task and outcome (ok, error).",
    ["task", "outcome"],
)
TASK_DURATION = Histogram(
    "kassa_task_duration_seconds",
    "Duration of one background task step.",
    ["task"],
)

Step = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class PeriodicTask:
    """Run ``step`` every ``interval_s`` seconds (measured from the end of the last run)."""

    name: str
    interval_s: float
    step: Step
    # Run once right away (sweeps after a restart) instead of after the first interval.
    run_at_start: bool = False

    async def run_once(self) -> bool:
        """One step; False (logged, counted) when it raised."""
        start = time.perf_counter()
        try:
            await self.step()
        except Exception:
            TASK_RUNS.labels(self.name, "error").inc()
            log.exception("task_failed", task=self.name)
            return False
        finally:
            TASK_DURATION.labels(self.name).observe(time.perf_counter() - start)
        TASK_RUNS.labels(self.name, "ok").inc()
        return True

    async def run_forever(self) -> None:
        if self.run_at_start:
            await self.run_once()
        while True:
            await asyncio.sleep(self.interval_s)
            await self.run_once()


@contextlib.asynccontextmanager
async def running_tasks(tasks: Sequence[PeriodicTask]) -> AsyncIterator[None]:
    """Run the tasks while the block runs; cancel and await them when it ends."""
    started = [asyncio.create_task(task.run_forever(), name=task.name) for task in tasks]
    try:
        yield
    finally:
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
