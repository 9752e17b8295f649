"""One sandbox: its ledger, custodian, faults, webhooks and logs, and the operations of the API.

All state lives on the event loop of the server; every change runs under one ``asyncio.Lock``
(:meth:`Sandbox.run`), so concurrent requests see each operation whole. Work that happens
"later" on the real system (a mint's confirmation, a payout's settlement) is a background task
that sleeps, then takes the same lock; webhook deliveries are background tasks too, so no reply
ever waits for a webhook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import httpx

from sandboxes.trovotech.chain import BantuChain
from sandboxes.trovotech.config import TrovoTechSandboxSettings
from sandboxes.trovotech.custody import Custodian
from sandboxes.trovotech.errors import not_found
from sandboxes.trovotech.faults import FaultState
from sandboxes.trovotech.idempotency import IdempotencyStore, Reply
from sandboxes.trovotech.middleware import RequestLog
from sandboxes.trovotech.schemas import (
    ConnectionRead,
    DeliveryRead,
    EventCreate,
    EventRead,
    MintCreate,
    PayoutAssetRead,
    PayoutCreate,
    PayoutRead,
    StateRead,
    TelemetrySync,
    TokensRead,
    TransferCreate,
    WalletCreate,
    WalletRead,
)
from sandboxes.trovotech.tasks import BackgroundTasks
from sandboxes.trovotech.webhooks import WebhookDispatcher

T = TypeVar("T")


class Sandbox:
    """The TrovoTech stand-in of one server process."""

    def __init__(self, settings: TrovoTechSandboxSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.tasks = BackgroundTasks()
        self.faults = FaultState(settings.faults)
        self.webhooks = WebhookDispatcher(settings, self.faults, http, self.tasks)
        self.chain = BantuChain(settings.passphrase, settings.base_fee)
        self.custodian = Custodian(settings, self.chain, self._emit)
        self.idempotency = IdempotencyStore()
        self.requests = RequestLog()
        self._lock = asyncio.Lock()

    def _emit(self, event_type: str, data: dict[str, object]) -> None:
        self.webhooks.emit(event_type, data)

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` alone."""
        async with self._lock:
            return work()

    def later(self, delay_ms: int, work: Callable[[], None], name: str) -> None:
        """Run ``work`` alone after ``delay_ms``, in the background."""

        async def run_later() -> None:
            await asyncio.sleep(delay_ms / 1000)
            await self.run(work)

        self.tasks.spawn(run_later(), name=name)

    async def aclose(self) -> None:
        """Stop pending confirmations and deliveries."""
        await self.tasks.aclose()

    # -- the TrovoTech API ---------------------------------------------------------------------

    def connection(self) -> ConnectionRead:
        """What the connection test reports."""
        return ConnectionRead(
            issuer_id=self.settings.issuer_id,
            issuer_public_key=self.custodian.issuer.public_key,
            custody_wallet=self.custodian.custody.public_key,
            network_passphrase=self.chain.passphrase,
            ledger=self.chain.ledger,
            server_time=datetime.now(UTC),
        )

    async def create_wallet(self, request: WalletCreate) -> Reply:
        """201 with a new wallet, or 200 with the investor's existing one."""

        def work() -> Reply:
            wallet, created = self.custodian.create_wallet(request)
            return (201 if created else 200), self.custodian.wallet_read(wallet)

        return await self.run(work)

    async def wallet(self, reference: str) -> WalletRead:
        """A wallet by id or address."""
        return await self.run(lambda: self.custodian.wallet_read(self.custodian.wallet(reference)))

    async def mint(self, request: MintCreate) -> Reply:
        """202 pending (``token.minted`` follows), or 201 confirmed when the delay is 0."""
        delay_ms = self.settings.mint_confirm_delay_ms

        def work() -> tuple[str, Reply]:
            token = self.custodian.mint(request)
            if delay_ms == 0:
                self.custodian.confirm_mint(token.token_id)
                return token.token_id, (201, self.custodian.mint_read(token))
            return token.token_id, (202, self.custodian.mint_read(token))

        token_id, reply = await self.run(work)
        if delay_ms:
            self.later(delay_ms, lambda: self.custodian.confirm_mint(token_id), f"mint-{token_id}")
        return reply

    async def tokens(self, wallet_address: str | None) -> TokensRead:
        """A wallet's tokens (all tokens without a wallet)."""

        def work() -> TokensRead:
            tokens = self.custodian.tokens_of(wallet_address)
            return TokensRead(
                wallet_address=wallet_address,
                tokens=[self.custodian.token_read(token) for token in tokens],
            )

        return await self.run(work)

    async def distribute(self, request: PayoutCreate) -> Reply:
        """202 processing; ``payout.completed`` (or ``payout.failed``) follows."""
        will_fail = self.faults.fail_payout()

        payout = await self.run(
            lambda: self.custodian.payout_read(self.custodian.start_payout(request, will_fail))
        )
        payout_id = payout.payout_id
        self.later(
            self.settings.payout_settle_delay_ms,
            lambda: self.custodian.settle_payout(payout_id),
            f"payout-{payout_id}",
        )
        return 202, payout

    async def payout(self, payout_id: str) -> PayoutRead:
        """A payout by id."""
        return await self.run(lambda: self.custodian.payout_read(self.custodian.payout(payout_id)))

    async def transfer(self, request: TransferCreate) -> Reply:
        """200 with the completed transfer; ``transfer.completed`` follows."""
        return await self.run(
            lambda: (200, self.custodian.transfer_read(self.custodian.transfer(request)))
        )

    async def sync_telemetry(self, request: TelemetrySync) -> Reply:
        """200 with where the snapshot is anchored."""
        return await self.run(lambda: (200, self.custodian.sync_telemetry(request)))

    # -- the admin API -------------------------------------------------------------------------

    async def state(self) -> StateRead:
        """Everything the sandbox holds."""

        def work() -> StateRead:
            custodian = self.custodian
            books = custodian.books
            return StateRead(
                network_passphrase=self.chain.passphrase,
                ledger=self.chain.ledger,
                issuer_id=self.settings.issuer_id,
                issuer_public_key=custodian.issuer.public_key,
                custody_wallet=custodian.custody.public_key,
                payout_asset=PayoutAssetRead(
                    code=custodian.payout_asset.code,
                    issuer=custodian.payout_asset.issuer,
                    decimals=self.settings.payout_asset_decimals,
                ),
                webhook_url=self.settings.webhook_url,
                wallets=[custodian.wallet_read(wallet) for wallet in books.wallets.values()],
                tokens=[custodian.token_read(token) for token in books.tokens.values()],
                assets=custodian.asset_reads(),
                payouts=[custodian.payout_read(payout) for payout in books.payouts.values()],
                transfers=[custodian.transfer_read(item) for item in books.transfers.values()],
                events=len(self.webhooks.events),
                deliveries=self.webhooks.counts(),
            )

        return await self.run(work)

    def emit_event(self, request: EventCreate) -> EventRead:
        """Sign and deliver any event, as TrovoTech would."""
        event, deliveries = self.webhooks.emit(request.event_type, request.data)
        return EventRead(
            event_id=event.event_id,
            event_type=event.event_type,
            created_at=event.created_at,
            deliveries=[delivery.delivery_id for delivery in deliveries],
        )

    def redeliver(self, event_id: str, times: int) -> list[DeliveryRead]:
        """Deliver a past event again, ``times`` times at once."""
        if event_id not in self.webhooks.events:
            raise not_found("error-event-not-found", "Event", "event_id", event_id)
        return [delivery.read() for delivery in self.webhooks.redeliver(event_id, times)]
