"""Webhook events, signed as TrovoTech signs them, delivered in the background with retries.

An event is one JSON body, fixed when the event is created::

    {"event_id": "evt_…", "event_type": "token.minted", "created_at": "…Z", "data": {…}}

and every delivery of it (retries, duplicates, redeliveries) sends exactly those bytes with
``X-TrovoTech-Signature: hex(HMAC-SHA256(webhook_secret, raw body))``. Other headers:
``X-TrovoTech-Event`` (the type), ``X-TrovoTech-Event-Id``, ``X-TrovoTech-Delivery`` (this
delivery), ``X-TrovoTech-Attempt`` (1, 2, …) and ``X-TrovoTech-Timestamp`` (Unix seconds of the
attempt; not signed — the signed time is ``created_at`` in the body).

A delivery is attempted up to ``webhook_max_attempts`` times: a 2xx ends it as delivered; a
network error, a timeout, a 5xx, 408 or 429 waits ``webhook_backoff_s`` (doubling) and tries
again; any other 4xx (a refused signature, say) ends it as failed at once. Faults may deliver an
event twice, sign a delivery with the wrong secret, or hold events for a window and send them
newest first.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from sandboxes.trovotech.config import TrovoTechSandboxSettings
from sandboxes.trovotech.faults import FaultState
from sandboxes.trovotech.schemas import (
    AttemptRead,
    DeliveryKind,
    DeliveryRead,
    DeliveryStatus,
)
from sandboxes.trovotech.tasks import BackgroundTasks
from shared.logging import get_logger

log = get_logger(__name__)

SIGNATURE_HEADER = "X-TrovoTech-Signature"
EVENT_HEADER = "X-TrovoTech-Event"
EVENT_ID_HEADER = "X-TrovoTech-Event-Id"
DELIVERY_HEADER = "X-TrovoTech-Delivery"
ATTEMPT_HEADER = "X-TrovoTech-Attempt"
TIMESTAMP_HEADER = "X-TrovoTech-Timestamp"
USER_AGENT = "TrovoTech-Webhooks/1.0 (Kassa sandbox)"
# What the bad-signature fault signs with instead of the secret.
WRONG_SECRET_PREFIX = b"not-the-webhook-secret:"
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
# Memory bounds: a long demo run keeps the newest events and deliveries.
MAX_EVENTS = 10_000
MAX_DELIVERIES = 20_000


def sign(secret: bytes, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the raw body: the ``X-TrovoTech-Signature`` value."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WebhookEvent:
    """An event and its body, byte for byte."""

    event_id: str
    event_type: str
    created_at: datetime
    body: bytes


@dataclass
class Delivery:
    """One delivery of an event, and what each attempt got back."""

    delivery_id: str
    event: WebhookEvent
    kind: DeliveryKind
    url: str | None
    signature: str
    signature_valid: bool
    created_at: datetime = field(default_factory=_now)
    status: DeliveryStatus = "pending"
    attempts: list[AttemptRead] = field(default_factory=list)
    completed_at: datetime | None = None
    # Set after the first attempt, so reordered events go out one after the other.
    first_attempt_done: asyncio.Event = field(default_factory=asyncio.Event)

    def read(self) -> DeliveryRead:
        """The delivery as ``GET /sandbox/deliveries`` shows it."""
        return DeliveryRead(
            delivery_id=self.delivery_id,
            event_id=self.event.event_id,
            event_type=self.event.event_type,
            kind=self.kind,
            url=self.url,
            status=self.status,
            signature=self.signature,
            signature_valid=self.signature_valid,
            body=self.event.body.decode(),
            attempts=list(self.attempts),
            created_at=self.created_at,
            completed_at=self.completed_at,
        )


def _retryable(status_code: int) -> bool:
    return status_code >= 500 or status_code in RETRYABLE_CLIENT_STATUSES


class WebhookDispatcher:
    """Creates, signs and delivers events; keeps every delivery for inspection."""

    def __init__(
        self,
        settings: TrovoTechSandboxSettings,
        faults: FaultState,
        http: httpx.AsyncClient,
        tasks: BackgroundTasks,
    ) -> None:
        self.settings = settings
        self.faults = faults
        self.http = http
        self.tasks = tasks
        self.events: OrderedDict[str, WebhookEvent] = OrderedDict()
        self.deliveries: deque[Delivery] = deque(maxlen=MAX_DELIVERIES)
        self._secret = settings.webhook_secret.get_secret_value().encode()
        self._held: list[Delivery] = []

    def emit(self, event_type: str, data: dict[str, Any]) -> tuple[WebhookEvent, list[Delivery]]:
        """Create an event and deliver it in the background (twice under the duplicate fault)."""
        created_at = _now()
        event_id = f"evt_{uuid.uuid4().hex}"
        body = orjson.dumps(
            {
                "event_id": event_id,
                "event_type": event_type,
                "created_at": created_at.isoformat().replace("+00:00", "Z"),
                "data": data,
            }
        )
        event = WebhookEvent(event_id, event_type, created_at, body)
        self.events[event_id] = event
        while len(self.events) > MAX_EVENTS:
            self.events.popitem(last=False)
        deliveries = [self._delivery(event, "original")]
        if self.faults.duplicate_webhook():
            deliveries.append(self._delivery(event, "duplicate"))
        for delivery in deliveries:
            self._dispatch(delivery)
        log.info("webhook_event_created", event_type=event_type, event_id=event_id)
        return event, deliveries

    def redeliver(self, event_id: str, times: int) -> list[Delivery]:
        """Send an event again, ``times`` deliveries at once (never held or reordered)."""
        event = self.events[event_id]
        deliveries = [self._delivery(event, "redelivery") for _ in range(times)]
        for delivery in deliveries:
            self._start(delivery)
        return deliveries

    def counts(self) -> dict[str, int]:
        """Deliveries by status."""
        return dict(Counter(delivery.status for delivery in self.deliveries))

    def clear(self) -> None:
        """Forget past deliveries (events stay, for redelivery)."""
        self.deliveries.clear()

    def _delivery(self, event: WebhookEvent, kind: DeliveryKind) -> Delivery:
        valid = not self.faults.bad_signature()
        secret = self._secret if valid else WRONG_SECRET_PREFIX + self._secret
        delivery = Delivery(
            delivery_id=f"dlv_{uuid.uuid4().hex}",
            event=event,
            kind=kind,
            url=self.settings.webhook_url,
            signature=sign(secret, event.body),
            signature_valid=valid,
        )
        self.deliveries.append(delivery)
        return delivery

    def _dispatch(self, delivery: Delivery) -> None:
        if delivery.url is None:
            delivery.status = "skipped"
            delivery.first_attempt_done.set()
            return
        if not self.faults.current.webhook_out_of_order:
            self._start(delivery)
            return
        if not self._held:
            self.tasks.spawn(self._release_held(), name="webhooks-reorder")
        self._held.append(delivery)

    def _start(self, delivery: Delivery) -> None:
        if delivery.url is None:
            delivery.status = "skipped"
            delivery.first_attempt_done.set()
            return
        self.tasks.spawn(self._deliver(delivery, delivery.url), name=delivery.delivery_id)

    async def _release_held(self) -> None:
        await asyncio.sleep(self.faults.current.webhook_reorder_window_ms / 1000)
        held, self._held = self._held, []
        # Newest first, and each first attempt finished before the next starts, so the
        # receiver sees the reversed order rather than a race.
        for delivery in reversed(held):
            self._start(delivery)
            await delivery.first_attempt_done.wait()

    async def _deliver(self, delivery: Delivery, url: str) -> None:
        attempts = self.settings.webhook_max_attempts
        try:
            for attempt in range(1, attempts + 1):
                status_code = await self._attempt(delivery, url, attempt)
                delivery.first_attempt_done.set()
                if status_code is not None and 200 <= status_code < 300:
                    self._finish(delivery, "delivered")
                    return
                if status_code is not None and not _retryable(status_code):
                    break
                if attempt < attempts:
                    await asyncio.sleep(self.settings.webhook_backoff_s * 2 ** (attempt - 1))
            self._finish(delivery, "failed")
        finally:
            delivery.first_attempt_done.set()

    async def _attempt(self, delivery: Delivery, url: str, attempt: int) -> int | None:
        event = delivery.event
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: delivery.signature,
            EVENT_HEADER: event.event_type,
            EVENT_ID_HEADER: event.event_id,
            DELIVERY_HEADER: delivery.delivery_id,
            ATTEMPT_HEADER: str(attempt),
            TIMESTAMP_HEADER: str(int(time.time())),
        }
        at = _now()
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        try:
            reply = await self.http.post(
                url, content=event.body, headers=headers, timeout=self.settings.webhook_timeout_s
            )
            status_code = reply.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}".strip(": ")
        delivery.attempts.append(
            AttemptRead(
                attempt=attempt,
                at=at,
                status_code=status_code,
                error=error,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        )
        log.info(
            "webhook_attempt",
            event_type=event.event_type,
            event_id=event.event_id,
            delivery_id=delivery.delivery_id,
            attempt=attempt,
            status=status_code,
            error=error,
        )
        return status_code

    @staticmethod
    def _finish(delivery: Delivery, status: DeliveryStatus) -> None:
        delivery.status = status
        delivery.completed_at = _now()
