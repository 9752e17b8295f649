"""``create_app()``: the Solana sandbox as an ASGI app.

The LiteSVM instance is built in the lifespan, never at import, so that each app (and each test)
gets its own chain. At start-up the faucet creates the sandbox USDC mints; ``/ready`` answers
200 from then on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from sandboxes.solana_rpc import SANDBOX_USDC_2022_MINT, SANDBOX_USDC_MINT
from sandboxes.solana_rpc.api import faucet_router, operations_router, rpc_router
from sandboxes.solana_rpc.config import APP_NAME, SandboxSettings
from sandboxes.solana_rpc.sandbox import Sandbox
from shared.errors import install_error_handlers
from shared.logging import configure_logging, get_logger
from shared.middleware import ObservabilityMiddleware

log = get_logger(__name__)

DESCRIPTION = (
    "A local Solana for offline runs and tests: Solana JSON-RPC 2.0 at `POST /` over LiteSVM, "
    f"and a faucet. Sandbox USDC: `{SANDBOX_USDC_MINT}` (SPL Token) and "
    f"`{SANDBOX_USDC_2022_MINT}` (Token-2022), 6 decimals. Never a real cluster."
)


def _lifespan(settings: SandboxSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(APP_NAME, settings.log_level, settings.log_json)
        sandbox = Sandbox(settings)
        await sandbox.run(sandbox.faucet.bootstrap)
        app.state.sandbox = sandbox
        log.info(
            "sandbox_started",
            port=settings.port,
            slot_ms=settings.slot_ms,
            usdc_mint=SANDBOX_USDC_MINT,
            usdc_2022_mint=SANDBOX_USDC_2022_MINT,
        )
        try:
            yield
        finally:
            app.state.sandbox = None
            log.info("sandbox_stopped")

    return lifespan


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    """The sandbox app; ``settings`` default to the environment (``SOLANA_SANDBOX_*``)."""
    settings = settings or SandboxSettings()
    app = FastAPI(
        title="Kassa Solana sandbox",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=_lifespan(settings),
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.sandbox = None
    install_error_handlers(app)
    app.include_router(operations_router)
    app.include_router(rpc_router)
    app.include_router(faucet_router)
    app.add_middleware(ObservabilityMiddleware, app_name=APP_NAME)
    return app
