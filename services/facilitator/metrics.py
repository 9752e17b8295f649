"""The facilitator's own Prometheus metrics (the kit adds HTTP, DB pool and outbound ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import LATENCY_BUCKETS

VERIFICATIONS = Counter(
    "kassa_facilitator_verifications_total",
    "Payments verified, by result (valid, invalid, error) and reason code.",
    ["result", "reason"],
)
SETTLEMENTS = Counter(
    "kassa_facilitator_settlements_total",
    "Settle requests answered, by result (settled, replayed, pending, failed) and reason.",
    ["result", "reason"],
)
VERIFY_LATENCY = Histogram(
    "kassa_facilitator_verify_duration_seconds",
    "Time to verify one payment, simulation included.",
    buckets=LATENCY_BUCKETS,
)
SETTLE_LATENCY = Histogram(
    "kassa_facilitator_settle_duration_seconds",
    "Time to settle one payment, confirmation included.",
    buckets=(*LATENCY_BUCKETS, 30.0, 60.0),
)
RPC_CALLS = Counter(
    "kassa_facilitator_rpc_calls_total",
    "Solana JSON-RPC calls, by method and outcome (ok, rpc_error, http_error, transport_error).",
    ["method", "outcome"],
)
RPC_LATENCY = Histogram(
    "kassa_facilitator_rpc_duration_seconds",
    "Duration of one Solana JSON-RPC call, by method.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
DUPLICATE_REJECTIONS = Counter(
    "kassa_facilitator_duplicate_rejections_total",
    "Settles that did not broadcast because the payment was already claimed, by guard.",
    ["guard"],
)
FEE_PAYER_BALANCE = Gauge(
    "kassa_facilitator_fee_payer_balance_lamports",
    "Each fee payer's SOL balance in lamports, as last read.",
    ["app", "fee_payer"],
)
PENDING_SETTLEMENTS = Gauge(
    "kassa_facilitator_pending_settlements",
    "Payments broadcast but not yet confirmed or failed, as of the last reconcile pass.",
)
ANNOUNCEMENTS = Counter(
    "kassa_facilitator_ledger_announcements_total",
    "Settled payments announced to the ledger, by outcome.",
    ["outcome"],
)
