"""``create_app()``: the eTIMS sandbox as an ASGI app.

The sandbox's memory is built in the lifespan, never at import, so each app (and each test)
gets its own; ``/ready`` answers 200 from then on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from sandboxes.etims.api import admin_router, operations_router, protocol_router
from sandboxes.etims.config import APP_NAME, EtimsSandboxSettings
from sandboxes.etims.sandbox import EtimsSandbox
from shared.errors import install_error_handlers
from shared.logging import configure_logging, get_logger
from shared.middleware import ObservabilityMiddleware

log = get_logger(__name__)

DESCRIPTION = (
    "A local KRA eTIMS for offline runs and tests. OSCU operations at KRA's paths "
    "(`POST /saveTrnsSalesOsdc`, headers `tin`, `bhfId`, `cmcKey`), the same operations on the "
    "VSCU paths (`POST /trnsSales/saveSales`, `tin` and `bhfId` in the body), KRA's envelope "
    "(`resultCd`, `resultMsg`, `resultDt`, `data`; HTTP 200 even for errors). Faults, devices "
    "and code changes under `/sandbox`. Never KRA: nothing sent here is declared."
)


def _lifespan(
    settings: EtimsSandboxSettings,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Build the sandbox's memory for this app's lifetime."""
        configure_logging(APP_NAME, settings.log_level, settings.log_json)
        app.state.sandbox = EtimsSandbox(settings)
        log.info(
            "sandbox_started",
            port=settings.port,
            oscu_serials=len(settings.oscu_serials),
            vscu_serials=len(settings.vscu_serials),
            latency_ms=settings.latency_ms,
            fault_rates=settings.fault_rates,
        )
        try:
            yield
        finally:
            app.state.sandbox = None
            log.info("sandbox_stopped")

    return lifespan


def create_app(settings: EtimsSandboxSettings | None = None) -> FastAPI:
    """The sandbox app; ``settings`` default to the environment (``ETIMS_SANDBOX_*``)."""
    settings = settings or EtimsSandboxSettings()
    app = FastAPI(
        title="Kassa KRA eTIMS sandbox",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=_lifespan(settings),
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.sandbox = None
    install_error_handlers(app)
    app.include_router(operations_router)
    app.include_router(admin_router)
    app.include_router(protocol_router())
    app.add_middleware(ObservabilityMiddleware, app_name=APP_NAME)
    return app
