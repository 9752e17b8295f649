"""The HTTP client for calls to other systems: one per app, built in the lifespan.

Every call has an explicit timeout; it is retried with jittered exponential backoff only when a
retry cannot do a thing twice (an idempotent method, a request carrying an ``Idempotency-Key``,
or a connection that was never established); ``Retry-After`` is honoured; the request id and
trace context travel with it; and each attempt is counted and timed per target.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from shared.context import child_traceparent, current_request_id, new_request_id, traceparent_var
from shared.logging import get_logger
from shared.metrics import OUTBOUND_LATENCY, OUTBOUND_REQUESTS, OUTBOUND_RETRIES

log = get_logger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how patiently to retry a call."""

    max_retries: int = 3
    backoff_base_s: float = 0.1
    backoff_max_s: float = 5.0
    # A Retry-After longer than this is answered to the caller instead of waited for.
    retry_after_cap_s: float = 30.0


NO_RETRY = RetryPolicy(max_retries=0)


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response, retry_after_s: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def is_retry_safe(method: str, headers: Mapping[str, str]) -> bool:
    """A retry cannot duplicate an effect: idempotent method or an idempotency key."""
    return method.upper() in IDEMPOTENT_METHODS or any(
        name.lower() == "idempotency-key" for name in headers
    )


class HttpClient:
    """Timeouts, safe retries, propagation and metrics around one ``httpx.AsyncClient``."""

    def __init__(
        self,
        *,
        app_name: str,
        timeout: httpx.Timeout | float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        self.app_name = app_name
        self.default_retry = retry or RetryPolicy()
        self._client = httpx.AsyncClient(
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        target: str,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        timeout: httpx.Timeout | float | None = None,  # noqa: ASYNC109 - per-call HTTP timeout
        retry: RetryPolicy | None = None,
    ) -> httpx.Response:
        """Send one logical call; the reply of the last attempt is returned, whatever its status.

        ``target`` names the other system in metrics and logs (``trovotech``, ``kra``...).
        Transport errors that survive the retries are raised (``httpx.TransportError``).
        """
        method = method.upper()
        outgoing = self._outgoing_headers(headers, idempotency_key)
        policy = retry or self.default_retry
        safe = is_retry_safe(method, outgoing)
        request = self._client.build_request(
            method,
            url,
            json=json,
            content=content,
            params=params,
            headers=outgoing,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_retries + 1),
            wait=self._waiter(policy),
            retry=retry_if_exception_type((_RetryableStatus, httpx.TransportError)),
            before_sleep=lambda state: self._on_retry(state, target, method),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(request, target, safe, policy)
        except _RetryableStatus as exhausted:
            return exhausted.response
        except _NotRetried as unsafe:
            raise unsafe.cause from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(
        self, request: httpx.Request, target: str, safe: bool, policy: RetryPolicy
    ) -> httpx.Response:
        method = request.method
        latency = OUTBOUND_LATENCY.labels(self.app_name, target, method)
        start = time.perf_counter()
        try:
            response = await self._client.send(request)
        except httpx.TransportError as exc:
            latency.observe(time.perf_counter() - start)
            OUTBOUND_REQUESTS.labels(self.app_name, target, method, type(exc).__name__).inc()
            # A connection never made carried no request, so even a POST may go again.
            if safe or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                raise
            raise _NotRetried(exc) from exc
        latency.observe(time.perf_counter() - start)
        OUTBOUND_REQUESTS.labels(self.app_name, target, method, str(response.status_code)).inc()
        if safe and response.status_code in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is None or retry_after <= policy.retry_after_cap_s:
                await response.aread()
                raise _RetryableStatus(response, retry_after)
        return response

    def _outgoing_headers(
        self, headers: Mapping[str, str] | None, idempotency_key: str | None
    ) -> dict[str, str]:
        outgoing = dict(headers or {})
        outgoing.setdefault("X-Request-ID", current_request_id() or new_request_id())
        outgoing.setdefault("traceparent", child_traceparent(traceparent_var.get()))
        if idempotency_key:
            outgoing["Idempotency-Key"] = idempotency_key
        return outgoing

    @staticmethod
    def _waiter(policy: RetryPolicy) -> Any:
        jitter = wait_random_exponential(multiplier=policy.backoff_base_s, max=policy.backoff_max_s)

        def wait(state: RetryCallState) -> float:
            backoff = float(jitter(state))
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            if isinstance(error, _RetryableStatus) and error.retry_after_s is not None:
                return max(backoff, error.retry_after_s)
            return backoff

        return wait

    def _on_retry(self, state: RetryCallState, target: str, method: str) -> None:
        OUTBOUND_RETRIES.labels(self.app_name, target, method).inc()
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        log.warning(
            "outbound_retry",
            target=target,
            method=method,
            attempt=state.attempt_number,
            reason=str(error),
        )


class _NotRetried(Exception):
    """A transport error on a call that is not safe to repeat; tenacity lets it through."""

    def __init__(self, cause: httpx.TransportError) -> None:
        super().__init__(str(cause))
        self.cause = cause
