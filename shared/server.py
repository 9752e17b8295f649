"""Serving an app with uvicorn, with a shutdown Kubernetes can route around.

On the first SIGTERM (or SIGINT) the app's ``/ready`` turns 503 at once; after
``SHUTDOWN_DRAIN_S`` seconds (time for Kubernetes to take the pod out of its endpoints) uvicorn
stops accepting connections, finishes in-flight requests within ``GRACEFUL_TIMEOUT_S``, runs the
lifespan shutdown and exits. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import importlib
from types import FrameType
from typing import cast

import uvicorn
from fastapi import FastAPI

from shared.runtime import Lifecycle
from shared.settings import KassaSettings
from shared.topology import app_entry


class KassaServer(uvicorn.Server):
    """uvicorn.Server whose first exit signal drains before stopping."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_s: float) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._drain_s = drain_s
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._lifecycle.is_draining or self._loop is None or self._drain_s <= 0:
            self._lifecycle.start_draining()
            super().handle_exit(sig, frame)
            return
        self._lifecycle.start_draining()
        # Signal handlers may run between any two bytecodes: hand over to the loop safely.
        self._loop.call_soon_threadsafe(
            self._loop.call_later, self._drain_s, super().handle_exit, sig, frame
        )


def build_server(app: FastAPI, settings: KassaSettings) -> KassaServer:
    """A server for ``app`` configured from its settings."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        timeout_keep_alive=30,
    )
    lifecycle = cast(Lifecycle, app.state.lifecycle)
    return KassaServer(config, lifecycle, settings.shutdown_drain_s)


def serve(app_name: str) -> None:
    """Run one app in this process until it is told to stop."""
    entry = app_entry(app_name)
    module = importlib.import_module(entry.module)
    app: FastAPI = module.create_app()
    settings = cast(KassaSettings, app.state.settings)
    build_server(app, settings).run()
