"""Serving an app with uvicorn, with a shutdown Kubernetes can route around.

On the first SIGTERM (or SIGINT) the app's ``/ready`` turns 503 at once; after
``SHUTDOWN_DRAIN_S`` seconds (time for Kubernetes to take the pod out of its endpoints) uvicorn
stops accepting connections, finishes in-flight requests within ``GRACEFUL_TIMEOUT_S``, runs the
lifespan shutdown and exits. A second signal stops at once.

With ``<P>WORKERS`` (or ``WEB_CONCURRENCY``) above 1, ``serve`` binds the port once and starts
that many worker processes that all accept on it. Each worker is a fresh interpreter that builds
its own app with ``create_app()`` (its own lifespan, database engine, Redis and HTTP clients) and
runs the same :class:`KassaServer`, so each drains as above. The parent only forwards SIGTERM and
SIGINT, waits, and exits non-zero when a worker failed; it restarts nothing (Kubernetes restarts
the pod). With one worker (the default) the app runs in this process, with no parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import cast

import uvicorn
from fastapi import FastAPI

from shared.logging import configure_logging, get_logger
from shared.runtime import Lifecycle
from shared.settings import KassaSettings
from shared.topology import app_entry

log = get_logger(__name__)

# The exit code of a worker whose app did not start (uvicorn's own STARTUP_FAILURE).
STARTUP_FAILURE = 3
# Headroom on top of drain + graceful shutdown before the parent kills a worker that hangs.
STOP_MARGIN_S = 5.0
_POLL_S = 0.1
_LISTEN_BACKLOG = 2048
_PR_SET_PDEATHSIG = 1
# How a worker ends when asked to stop: uvicorn re-raises the signal it caught once it is done.
_CLEAN_EXIT_CODES = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


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


def _create_app(app_name: str) -> FastAPI:
    app: FastAPI = importlib.import_module(app_entry(app_name).module).create_app()
    return app


def _load_settings(app_name: str) -> KassaSettings:
    settings: KassaSettings = importlib.import_module(app_entry(app_name).module).load_settings()
    return settings


def serve(app_name: str) -> None:
    """Run one app until it is told to stop: in this process, or in ``workers`` processes."""
    settings = _load_settings(app_name)
    if settings.workers > 1:
        sys.exit(WorkerSupervisor(app_name, settings).run())
    app = _create_app(app_name)
    build_server(app, cast(KassaSettings, app.state.settings)).run()


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that worker processes can inherit."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(_LISTEN_BACKLOG)
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


class WorkerSupervisor:
    """Starts ``settings.workers`` processes on one shared socket and waits for them."""

    def __init__(self, app_name: str, settings: KassaSettings) -> None:
        self._app_name = app_name
        self._settings = settings
        self._workers: list[subprocess.Popen[bytes]] = []
        self._stop_deadline: float | None = None
        self._failed = False

    def run(self) -> int:
        """Serve until the workers stop; 0 only if every worker stopped cleanly on request."""
        settings = self._settings
        configure_logging(settings.app_name, settings.log_level, settings.log_json)
        previous = {
            sig: signal.signal(sig, self._forward) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            with bind_listener(settings.host, settings.port) as listener:
                # Each worker gets its own copy of the socket; once they all close theirs,
                # the port closes, so the parent must not keep one.
                self._workers = [self._spawn(listener.fileno()) for _ in range(settings.workers)]
            if self._stop_deadline is not None:  # a signal came while they were being started
                self._stop_all(signal.SIGTERM)
            log.info(
                "workers_started",
                port=settings.port,
                pids=[worker.pid for worker in self._workers],
            )
            self._wait()
        finally:
            self._stop_all(signal.SIGKILL)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self._failed else 0

    def _spawn(self, fd: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "shared.server", "worker", self._app_name, str(fd)],
            pass_fds=(fd,),
            # Terminal signals (Ctrl-C) reach only the parent, which forwards them once.
            start_new_session=True,
        )

    def _forward(self, sig: int, _frame: FrameType | None) -> None:
        if self._stop_deadline is None:
            settings = self._settings
            budget = settings.shutdown_drain_s + settings.graceful_timeout_s + STOP_MARGIN_S
            self._stop_deadline = time.monotonic() + budget
        self._stop_all(sig)

    def _stop_all(self, sig: int) -> None:
        for worker in self._workers:
            if worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.send_signal(sig)

    def _wait(self) -> None:
        while self._any_running():
            for worker in self._workers:
                if worker.returncode is not None and self._stop_deadline is None:
                    self._worker_failed(worker)
            if self._stop_deadline is not None and time.monotonic() > self._stop_deadline:
                log.error("workers_killed", reason="did not stop within drain + graceful time")
                self._failed = True
                self._stop_all(signal.SIGKILL)
            time.sleep(_POLL_S)
        if any(worker.returncode not in _CLEAN_EXIT_CODES for worker in self._workers):
            self._failed = True
        log.info("workers_stopped", codes=[worker.returncode for worker in self._workers])

    def _any_running(self) -> bool:
        """Poll every worker, so that each exit is seen; True while any still runs."""
        codes = [worker.poll() for worker in self._workers]
        return None in codes

    def _worker_failed(self, worker: subprocess.Popen[bytes]) -> None:
        """A worker ended without being asked to: stop the others; the pod gets restarted."""
        log.error("worker_exited", pid=worker.pid, code=worker.returncode)
        self._failed = True
        self._forward(signal.SIGTERM, None)


def _die_with_parent() -> None:
    """Linux: get SIGTERM (and so drain) when the parent dies without forwarding a signal."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run_worker(app_name: str, fd: int) -> int:
    """One worker: build the app and serve it on the inherited listening socket ``fd``."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        return 1
    listener = socket.socket(fileno=fd)
    app = _create_app(app_name)
    server = build_server(app, cast(KassaSettings, app.state.settings))
    server.run(sockets=[listener])
    return 0 if server.started else STARTUP_FAILURE


def main(argv: Sequence[str]) -> int:
    """``python -m shared.server worker APP FD``: how the parent starts each worker."""
    if len(argv) != 3 or argv[0] != "worker":
        print("usage: python -m shared.server worker APP FD", file=sys.stderr)
        return 2
    return run_worker(argv[1], int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
