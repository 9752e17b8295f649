"""The one chain of a sandbox process, its faucet, and the lock that serializes them.

LiteSVM is synchronous and not thread-safe, so every request touches it on the event loop,
one at a time, under one ``asyncio.Lock``; each unit of work first lets the slot clock catch up.
The work itself is short (microseconds to a few milliseconds per transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sandboxes.solana_rpc.chain import Chain, SlotClock
from sandboxes.solana_rpc.config import (
    MINT_AUTHORITY_SEED,
    TREASURY_SEED,
    SandboxSettings,
    sandbox_keypair,
)
from sandboxes.solana_rpc.faucet import Faucet

T = TypeVar("T")


class Sandbox:
    """A chain and its faucet behind one lock."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.chain = Chain(SlotClock(settings.slot_ms), sandbox_keypair(TREASURY_SEED))
        self.faucet = Faucet(self.chain, sandbox_keypair(MINT_AUTHORITY_SEED))
        self._lock = asyncio.Lock()

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` alone, after producing the slots the clock has reached."""
        async with self._lock:
            self.chain.sync()
            return work()
