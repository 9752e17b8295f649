"""Periodic tasks run, survive a failing step, and stop with their block."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from shared.tasks import PeriodicTask, running_tasks


def _runs(task: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("kassa_task_runs_total", {"task": task, "outcome": outcome})
    return value or 0.0


class TestPeriodicTask:
    async def test_a_failing_step_is_counted_and_the_loop_goes_on(self) -> None:
        calls: list[int] = []

        async def step() -> None:
            calls.append(len(calls))
            if len(calls) == 1:
                raise RuntimeError("database down")

        task = PeriodicTask("flaky-test-step", 0.01, step, run_at_start=True)
        async with running_tasks([task]):
            for _ in range(200):
                if len(calls) >= 3:
                    break
                await asyncio.sleep(0.01)
        assert len(calls) >= 3
        assert _runs("flaky-test-step", "error") == 1
        assert _runs("flaky-test-step", "ok") >= 2

    async def test_leaving_the_block_stops_the_task(self) -> None:
        calls: list[int] = []

        async def step() -> None:
            calls.append(1)

        async with running_tasks([PeriodicTask("stopping-test-step", 0.01, step)]):
            await asyncio.sleep(0.05)
        seen = len(calls)
        await asyncio.sleep(0.05)
        assert len(calls) == seen
