"""``create_app()``: the TrovoTech sandbox as an ASGI app.

The ledger and the webhook client are built in the lifespan, never at import, so each app (and
each test) gets its own chain; ``/ready`` answers 200 from then on. At stop, pending
confirmations and deliveries are cancelled before the HTTP client closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
from fastapi import FastAPI

from sandboxes.trovotech.api import (
    api_router,
    connection_router,
    operations_router,
    sandbox_router,
)
from sandboxes.trovotech.config import APP_NAME, TrovoTechSandboxSettings
from sandboxes.trovotech.errors import install_error_handlers
from sandboxes.trovotech.middleware import FaultMiddleware
from sandboxes.trovotech.sandbox import Sandbox
from shared.logging import configure_logging, get_logger
from shared.middleware import ObservabilityMiddleware

log = get_logger(__name__)

DESCRIPTION = (
    "A local TrovoTech custody API on a simulated Bantu chain: real keypairs and real signed "
    "Stellar envelopes for the configured network passphrase, applied to an in-memory ledger; "
    "HMAC-signed webhooks (X-TrovoTech-Signature) with retries; fault injection under "
    "`/sandbox/faults`. The API is served at `/` and at `/v1`. Never a real custodian."
)


def _lifespan(
    settings: TrovoTechSandboxSettings,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(APP_NAME, settings.log_level, settings.log_json)
        async with httpx.AsyncClient(follow_redirects=False) as http:
            sandbox = Sandbox(settings, http)
            app.state.sandbox = sandbox
            log.info(
                "sandbox_started",
                port=settings.port,
                network_passphrase=settings.passphrase,
                issuer=sandbox.custodian.issuer.public_key,
                custody_wallet=sandbox.custodian.custody.public_key,
                webhook_url=settings.webhook_url,
            )
            try:
                yield
            finally:
                app.state.sandbox = None
                await sandbox.aclose()
                log.info("sandbox_stopped")

    return lifespan


def create_app(settings: TrovoTechSandboxSettings | None = None) -> FastAPI:
    """The sandbox app; ``settings`` default to the environment (``TROVOTECH_SANDBOX_*``)."""
    settings = settings or TrovoTechSandboxSettings()
    app = FastAPI(
        title="Kassa TrovoTech sandbox",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=_lifespan(settings),
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.sandbox = None
    install_error_handlers(app)
    app.include_router(operations_router)
    app.include_router(connection_router)
    app.include_router(api_router, prefix="/v1")
    # The same API at the root: `kassa run` sets TROVOTECH_BASE_URL without /v1.
    app.include_router(api_router, include_in_schema=False)
    app.include_router(sandbox_router)
    app.add_middleware(FaultMiddleware)
    app.add_middleware(ObservabilityMiddleware, app_name=APP_NAME)
    return app
