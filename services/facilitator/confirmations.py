"""One status poll for every settlement waiting in this process.

Each settle waiting for its confirmation used to poll ``getSignatureStatuses`` on its own: at
32 in flight that is 32 calls per interval for one answer the node can give in one call (up to
256 signatures). The watcher batches them, so the interval can be short (a confirmation is
seen within ``interval_s`` of landing) without multiplying the RPC load.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from services.facilitator.rpc import RpcError, RpcUnavailable, SignatureStatus, SolanaRpc
from shared.logging import get_logger

log = get_logger(__name__)

MAX_SIGNATURES_PER_CALL = 256


class ConfirmationWatcher:
    """Answers "what is this signature's status now?" from one batched poll per interval."""

    def __init__(self, rpc: SolanaRpc, interval_s: float) -> None:
        self._rpc = rpc
        self._interval_s = interval_s
        self._waiting: dict[str, list[asyncio.Future[SignatureStatus | None]]] = {}
        self._wake = asyncio.Event()

    async def status(self, signature: str) -> SignatureStatus | None:
        """The signature's status at the next poll (None: unknown to the node, or no answer)."""
        future: asyncio.Future[SignatureStatus | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(signature, []).append(future)
        self._wake.set()
        return await future

    async def run(self) -> None:
        """Poll while anyone waits; sleep otherwise. Runs until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await self._poll_once()
                await asyncio.sleep(self._interval_s)

    async def _poll_once(self) -> None:
        signatures = list(self._waiting)[:MAX_SIGNATURES_PER_CALL]
        waiters = {signature: self._waiting.pop(signature) for signature in signatures}
        try:
            statuses = await self._rpc.signature_statuses(signatures)
        except (RpcError, RpcUnavailable) as exc:
            log.warning("confirmation_poll_failed", signatures=len(signatures), error=str(exc))
            statuses = [None] * len(signatures)
        for signature, status in zip(signatures, statuses, strict=True):
            for future in waiters[signature]:
                if not future.done():
                    future.set_result(status)


@contextlib.asynccontextmanager
async def watching(watcher: ConfirmationWatcher) -> AsyncIterator[None]:
    """Run the watcher for the duration of the block."""
    task = asyncio.create_task(watcher.run(), name="facilitator_confirmations")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
