"""HttpClient against a real local HTTP server: safe retries, Retry-After, propagation, metrics."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from shared.context import request_id_var, traceparent_var
from shared.http_client import HttpClient, RetryPolicy, is_retry_safe, parse_retry_after

APP = "http-client-tests"
FAST = RetryPolicy(max_retries=3, backoff_base_s=0.001, backoff_max_s=0.01)
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Seen:
    """One request as the server received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    at: float


class ScriptedServer:
    """Answers requests from a script, in order (200 once the script is used up)."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.seen: list[Seen] = []
        self.base_url = ""

    def reply_with(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def statuses(self, *statuses: int) -> None:
        self.reply_with(*(Reply(status=status) for status in statuses))

    def url(self, path: str = "/thing") -> str:
        return f"{self.base_url}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                method=request.method,
                path=request.path,
                headers={name.lower(): value for name, value in request.headers.items()},
                at=time.monotonic(),
            )
        )
        await request.read()
        reply = self.script.pop(0) if self.script else Reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return web.Response(status=reply.status, headers=dict(reply.headers), text="ok")


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    scripted = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    scripted.base_url = f"http://{host}:{port}"
    try:
        yield scripted
    finally:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient(app_name=APP, timeout=5.0, retry=FAST)
    try:
        yield http
    finally:
        await http.aclose()


@pytest.fixture
def clean_context() -> Iterator[None]:
    """No request id or trace context, as outside a request."""
    request_token = request_id_var.set(None)
    trace_token = traceparent_var.set(None)
    try:
        yield
    finally:
        traceparent_var.reset(trace_token)
        request_id_var.reset(request_token)


def sample(name: str, labels: Mapping[str, str]) -> float:
    return REGISTRY.get_sample_value(name, dict(labels)) or 0.0


def free_port() -> int:
    """A port nothing listens on (bound once to get a number, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestRetrySafeStatuses:
    async def test_get_is_retried_through_503s_until_200(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        server.statuses(503, 503, 200)

        response = await client.request("GET", server.url(), target="retry-get")

        assert response.status_code == 200
        assert len(server.seen) == 3
        assert all(seen.method == "GET" and seen.path == "/thing" for seen in server.seen)

    async def test_post_without_idempotency_key_is_not_retried(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        server.statuses(503, 200)

        response = await client.request("POST", server.url(), target="post-no-key", json={})

        assert response.status_code == 503
        assert len(server.seen) == 1

    async def test_post_with_idempotency_key_is_retried_with_the_same_key(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        server.statuses(502, 201)

        response = await client.request(
            "POST", server.url(), target="post-key", json={"a": 1}, idempotency_key="k1"
        )

        assert response.status_code == 201
        assert len(server.seen) == 2
        assert [seen.headers.get("idempotency-key") for seen in server.seen] == ["k1", "k1"]

    @pytest.mark.parametrize("status", [400, 404, 409])
    async def test_4xx_is_never_retried_even_for_get(
        self, server: ScriptedServer, client: HttpClient, status: int
    ) -> None:
        server.statuses(status, 200)

        response = await client.request("GET", server.url(), target="get-4xx")

        assert response.status_code == status
        assert len(server.seen) == 1

    async def test_exhausted_retries_return_the_last_response(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        server.statuses(*([503] * (FAST.max_retries + 1)), 200)

        response = await client.request("GET", server.url(), target="exhausted")

        assert response.status_code == 503
        assert len(server.seen) == FAST.max_retries + 1

    async def test_exhausted_retries_are_counted(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        labels = {"app": APP, "target": "exhausted-metric", "method": "GET"}
        before = sample("kassa_outbound_retries_total", labels)
        server.statuses(*([503] * (FAST.max_retries + 1)))

        await client.request("GET", server.url(), target="exhausted-metric")

        after = sample("kassa_outbound_retries_total", labels)
        assert after - before == FAST.max_retries


class TestRetryAfter:
    async def test_retry_after_is_waited_for_before_the_next_attempt(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        server.reply_with(Reply(status=503, headers={"Retry-After": "1"}), Reply(status=200))

        response = await client.request("GET", server.url(), target="retry-after")

        assert response.status_code == 200
        assert len(server.seen) == 2
        assert server.seen[1].at - server.seen[0].at >= 0.9

    async def test_retry_after_beyond_the_cap_is_returned_at_once(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        over_cap = int(FAST.retry_after_cap_s) + 60
        server.reply_with(Reply(status=503, headers={"Retry-After": str(over_cap)}), Reply())
        start = time.monotonic()

        response = await client.request("GET", server.url(), target="retry-after-cap")

        assert response.status_code == 503
        assert response.headers["retry-after"] == str(over_cap)
        assert len(server.seen) == 1
        assert time.monotonic() - start < 1.0


class TestParseRetryAfter:
    async def test_delta_seconds(self) -> None:
        assert parse_retry_after("5") == 5.0

    async def test_delta_seconds_with_surrounding_space(self) -> None:
        assert parse_retry_after(" 7 ") == 7.0

    async def test_http_date_in_the_future_is_seconds_from_now(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        header = format_datetime(now + timedelta(seconds=10), usegmt=True)

        assert parse_retry_after(header, now=now.timestamp()) == pytest.approx(10.0)

    async def test_http_date_against_the_clock(self) -> None:
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)

        delay = parse_retry_after(header)

        assert delay is not None
        assert 8.5 <= delay <= 10.0

    async def test_http_date_in_the_past_is_zero(self) -> None:
        header = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)

        assert parse_retry_after(header) == 0.0

    @pytest.mark.parametrize("value", ["soon", "-5", "1.5", "Mon, 99 Foo 2024"])
    async def test_garbage_is_none(self, value: str) -> None:
        assert parse_retry_after(value) is None

    async def test_missing_header_is_none(self) -> None:
        assert parse_retry_after(None) is None
        assert parse_retry_after("") is None


class TestIsRetrySafe:
    @pytest.mark.parametrize("method", ["GET", "head", "OPTIONS", "PUT", "DELETE"])
    async def test_idempotent_methods_are_safe(self, method: str) -> None:
        assert is_retry_safe(method, {})

    @pytest.mark.parametrize("method", ["POST", "PATCH"])
    async def test_non_idempotent_methods_without_key_are_unsafe(self, method: str) -> None:
        assert not is_retry_safe(method, {"X-Request-ID": "r"})

    async def test_an_idempotency_key_in_any_case_makes_post_safe(self) -> None:
        assert is_retry_safe("POST", {"idempotency-KEY": "k"})


class TestTransportErrors:
    async def test_connection_refused_post_is_retried_then_raises(self, client: HttpClient) -> None:
        labels = {"app": APP, "target": "refused", "method": "POST"}
        before = sample("kassa_outbound_retries_total", labels)
        url = f"http://127.0.0.1:{free_port()}/thing"

        with pytest.raises(httpx.ConnectError):
            await client.request("POST", url, target="refused", json={"a": 1})

        after = sample("kassa_outbound_retries_total", labels)
        assert after - before == FAST.max_retries

    async def test_read_timeout_on_post_without_key_is_not_retried(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        server.reply_with(Reply(status=200, delay_s=0.5))

        with pytest.raises(httpx.ReadTimeout):
            await client.request("POST", server.url(), target="read-timeout", json={}, timeout=0.1)

        assert len(server.seen) == 1

    async def test_read_timeout_on_get_is_retried(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        server.reply_with(Reply(status=200, delay_s=0.5), Reply(status=200))

        response = await client.request("GET", server.url(), target="get-timeout", timeout=0.1)

        assert response.status_code == 200
        assert len(server.seen) == 2


class TestPropagation:
    async def test_request_id_and_trace_id_travel_with_a_new_span(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        incoming = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
        request_token = request_id_var.set("req-123")
        trace_token = traceparent_var.set(incoming)
        try:
            await client.request("GET", server.url(), target="propagation")
        finally:
            traceparent_var.reset(trace_token)
            request_id_var.reset(request_token)

        headers = server.seen[0].headers
        assert headers["x-request-id"] == "req-123"
        match = TRACEPARENT_RE.match(headers["traceparent"])
        assert match is not None
        assert match.group(1) == "a" * 32
        assert match.group(2) != "b" * 16
        assert match.group(3) == "01"

    @pytest.mark.usefixtures("clean_context")
    async def test_without_context_a_request_id_and_traceparent_are_generated(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        await client.request("GET", server.url(), target="propagation")

        headers = server.seen[0].headers
        assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
        match = TRACEPARENT_RE.match(headers["traceparent"])
        assert match is not None
        assert match.group(1) != "0" * 32

    @pytest.mark.usefixtures("clean_context")
    async def test_retries_carry_the_same_request_id(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        server.statuses(503, 200)

        await client.request("GET", server.url(), target="propagation")

        request_ids = {seen.headers["x-request-id"] for seen in server.seen}
        assert len(server.seen) == 2
        assert len(request_ids) == 1

    async def test_caller_headers_are_kept(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        await client.request(
            "GET",
            server.url(),
            target="propagation",
            headers={"X-Request-ID": "mine", "X-Extra": "yes"},
        )

        headers = server.seen[0].headers
        assert headers["x-request-id"] == "mine"
        assert headers["x-extra"] == "yes"


class TestMetrics:
    async def test_a_successful_call_is_counted_once_with_its_status(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        labels = {"app": APP, "target": "metrics-ok", "method": "GET", "outcome": "200"}
        before = sample("kassa_outbound_requests_total", labels)

        await client.request("GET", server.url(), target="metrics-ok")

        assert sample("kassa_outbound_requests_total", labels) - before == 1

    async def test_a_successful_call_is_timed(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        labels = {"app": APP, "target": "metrics-latency", "method": "GET"}
        name = "kassa_outbound_request_duration_seconds_count"
        before = sample(name, labels)

        await client.request("GET", server.url(), target="metrics-latency")

        assert sample(name, labels) - before == 1

    async def test_every_attempt_is_counted_by_outcome(
        self, server: ScriptedServer, client: HttpClient
    ) -> None:
        base = {"app": APP, "target": "metrics-attempts", "method": "GET"}
        failed = {**base, "outcome": "503"}
        succeeded = {**base, "outcome": "200"}
        failed_before = sample("kassa_outbound_requests_total", failed)
        succeeded_before = sample("kassa_outbound_requests_total", succeeded)
        server.statuses(503, 503, 200)

        await client.request("GET", server.url(), target="metrics-attempts")

        assert sample("kassa_outbound_requests_total", failed) - failed_before == 2
        assert sample("kassa_outbound_requests_total", succeeded) - succeeded_before == 1
