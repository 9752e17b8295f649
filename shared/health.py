"""``/health``, ``/ready`` and ``/metrics`` for every app.

``/health`` is liveness: the process answers, nothing else is consulted, so a slow database
never gets a pod killed. ``/ready`` is readiness: the database answers, its schema is at the
revision the code expects, Redis answers when configured, each app's own checks pass, and the
app is not shutting down. Kubernetes routes traffic only while it is 200.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from shared.errors import json_bytes
from shared.metrics import READY, metrics_endpoint
from shared.migrations import current_revision
from shared.runtime import ReadinessCheck, ReadinessReport, Runtime, get_runtime

CHECK_TIMEOUT_S = 2.0

health_router = APIRouter(tags=["operations"])


@health_router.get("/health", summary="Liveness: the process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def _check_database(runtime: Runtime) -> str | None:
    await runtime.database.ping(CHECK_TIMEOUT_S)
    return None


async def _check_migrations(runtime: Runtime) -> str | None:
    if runtime.migrations is None:
        return None
    current = await current_revision(runtime.database, runtime.migrations)
    if current != runtime.expected_revision:
        return f"database at revision {current}, code expects {runtime.expected_revision}"
    return None


async def _check_redis(runtime: Runtime) -> str | None:
    if runtime.redis is None:
        return None
    await runtime.redis.ping()
    return None


async def _run_check(check: ReadinessCheck) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            problem = await check()
    except TimeoutError:
        return f"error: no answer within {CHECK_TIMEOUT_S}s"
    except Exception as exc:  # readiness reports every failure; it never raises
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok" if problem is None else f"error: {problem}"


async def readiness(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    """Run every check concurrently; ready only if all pass and the app is not draining."""
    checks: dict[str, ReadinessCheck] = {
        "database": lambda: _check_database(runtime),
        "migrations": lambda: _check_migrations(runtime),
    }
    if runtime.redis is not None:
        checks["redis"] = lambda: _check_redis(runtime)
    checks.update(runtime.readiness_checks)
    results, sections = await asyncio.gather(
        asyncio.gather(*(_run_check(check) for check in checks.values())),
        asyncio.gather(*(_run_report(report) for report in runtime.readiness_reports.values())),
    )
    draining = runtime.lifecycle.is_draining
    ready = not draining and all(result == "ok" for result in results)
    body: dict[str, Any] = {
        "status": "ready" if ready else ("draining" if draining else "not_ready"),
        "checks": dict(zip(checks, results, strict=True)),
    }
    body.update(zip(runtime.readiness_reports, sections, strict=True))
    return ready, body


async def _run_report(report: ReadinessReport) -> dict[str, Any]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await report()
    except Exception as exc:  # a report that fails is itself reported, never raised
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


@health_router.get(
    "/ready",
    summary="Readiness: dependencies reachable, schema current, not shutting down",
    responses={503: {"description": "Not ready; the body names the failing checks"}},
)
async def ready(request: Request) -> Response:
    runtime = get_runtime(request)
    is_ready, report = await readiness(runtime)
    READY.labels(app=runtime.settings.app_name).set(1 if is_ready else 0)
    return Response(
        json_bytes(report), status_code=200 if is_ready else 503, media_type="application/json"
    )


health_router.add_api_route(
    "/metrics",
    metrics_endpoint,
    methods=["GET"],
    summary="Prometheus metrics",
    include_in_schema=False,
)
