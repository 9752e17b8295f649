"""Prometheus metrics every app exports, and the ``/metrics`` reply.

Metric objects are process-wide (one app per process in every deployment); each carries an
``app`` label so a scrape of several apps in one test process stays readable.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "kassa_http_requests_total",
    "HTTP requests served, by route template, method and status.",
    ["app", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "kassa_http_request_duration_seconds",
    "Time to serve an HTTP request, by route template, method and status.",
    ["app", "method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "kassa_http_requests_in_flight",
    "HTTP requests being served now.",
    ["app"],
)
OUTBOUND_REQUESTS = Counter(
    "kassa_outbound_requests_total",
    "Calls to other systems, by target, method and outcome (status code or error kind).",
    ["app", "target", "method", "outcome"],
)
OUTBOUND_LATENCY = Histogram(
    "kassa_outbound_request_duration_seconds",
    "Duration of one attempt of a call to another system.",
    ["app", "target", "method"],
    buckets=LATENCY_BUCKETS,
)
OUTBOUND_RETRIES = Counter(
    "kassa_outbound_retries_total",
    "Retried attempts of calls to other systems.",
    ["app", "target", "method"],
)
READY = Gauge(
    "kassa_ready",
    "1 when the app's /ready check passes, 0 otherwise (updated on each check).",
    ["app"],
)
UNHANDLED_ERRORS = Counter(
    "kassa_unhandled_errors_total",
    "Requests that ended in an unexpected exception (500).",
    ["app"],
)


async def metrics_endpoint(_request: Request) -> Response:
    """The Prometheus text exposition of every metric of this process."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
