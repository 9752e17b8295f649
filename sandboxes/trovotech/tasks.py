"""Background work that must never hold up an API reply: confirmations and webhook deliveries.

Tasks are kept in a set (the event loop keeps only weak references, so an unreferenced task can
be collected mid-flight) and cancelled together when the app stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from shared.logging import get_logger

log = get_logger(__name__)


class BackgroundTasks:
    """Fire-and-forget tasks that are still owned, logged when they fail, cancelled at stop."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``work`` in the background."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_task_failed", task=task.get_name(), error=repr(task.exception()))

    @property
    def running(self) -> int:
        """How many tasks have not finished."""
        return len(self._tasks)

    async def aclose(self) -> None:
        """Cancel every task and wait until they have stopped."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
