"""The facilitator app: ``create_app()`` for uvicorn, ``load_settings()`` and ``MIGRATIONS``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from solders.keypair import Keypair

from services.facilitator.announcements import HttpAnnouncer
from services.facilitator.api import payments_router, router
from services.facilitator.config import FacilitatorSettings
from services.facilitator.confirmations import ConfirmationWatcher, watching
from services.facilitator.fee_payers import FeePayers, parse_fee_payer_keys
from services.facilitator.models import idempotency_keys
from services.facilitator.repository import ReplayGuard
from services.facilitator.rpc import SolanaRpc
from services.facilitator.service import Facilitator
from services.facilitator.settlement import Settlement, SettlementPolicy
from services.facilitator.tasks import (
    announce_settled,
    reconcile_unfinished,
    refresh_fee_payers,
    remove_expired_nonces,
)
from services.facilitator.transaction import Limits
from shared.app_factory import AppSpec, LifespanExtension, create_kassa_app
from shared.logging import get_logger
from shared.migrations import Migrations
from shared.runtime import ReadinessCheck, ReadinessReport, Runtime
from shared.tasks import PeriodicTask, running_tasks

MIGRATIONS = Migrations(app_name="facilitator", package="services.facilitator")
log = get_logger(__name__)


def load_settings() -> FacilitatorSettings:
    """Settings from the environment."""
    return FacilitatorSettings()


def _fee_payers(settings: FacilitatorSettings) -> FeePayers:
    keypairs = parse_fee_payer_keys(settings.fee_payer_keys.get_secret_value())
    if not keypairs:
        # Production refuses an empty key list at start-up (a production secret).
        keypairs = [Keypair()]
        log.warning("fee_payer_ephemeral", fee_payer=str(keypairs[0].pubkey()))
    return FeePayers(
        keypairs, app_name=settings.app_name, floor_lamports=settings.fee_payer_min_lamports
    )


def _tasks(
    settings: FacilitatorSettings, runtime: Runtime, settlement: Settlement
) -> list[PeriodicTask]:
    facilitator = settlement.facilitator
    sessions = runtime.database.sessionmaker
    grace = timedelta(seconds=settings.confirm_timeout_s)
    tasks = [
        PeriodicTask(
            "facilitator_fee_payers",
            settings.fee_payer_refresh_s,
            lambda: refresh_fee_payers(
                facilitator.fee_payers, facilitator.rpc, settings.airdrop_lamports
            ),
            run_at_start=True,
        ),
        PeriodicTask(
            "facilitator_reconcile",
            settings.reconcile_interval_s,
            lambda: reconcile_unfinished(settlement, grace),
            run_at_start=True,
        ),
        PeriodicTask(
            "facilitator_memo_nonces",
            settings.cleanup_interval_s,
            lambda: remove_expired_nonces(sessions),
        ),
    ]
    if settings.ledger_url:
        announcer = HttpAnnouncer(
            runtime.http, settings.ledger_url, settings.ledger_api_key.get_secret_value()
        )
        tasks.append(
            PeriodicTask("facilitator_announce", 2.0, lambda: announce_settled(sessions, announcer))
        )
    return tasks


def _lifespan(settings: FacilitatorSettings) -> LifespanExtension:
    @asynccontextmanager
    async def facilitator_lifespan(app: FastAPI, runtime: Runtime) -> AsyncIterator[None]:
        rpc = SolanaRpc(settings.solana_rpc_url, timeout_s=settings.rpc_timeout_s)
        facilitator = Facilitator(
            network=settings.network_config(),
            rpc=rpc,
            fee_payers=_fee_payers(settings),
            limits=Limits(
                max_compute_unit_limit=settings.max_compute_unit_limit,
                max_compute_unit_price_micro_lamports=settings.max_compute_unit_price_micro_lamports,
            ),
            commitment=settings.commitment,
            replay_guard=ReplayGuard(runtime.database.engine),
        )
        watcher = ConfirmationWatcher(rpc, settings.confirm_poll_s)
        settlement = Settlement(
            facilitator,
            runtime.database.sessionmaker,
            SettlementPolicy(
                commitment=settings.commitment,
                confirm_timeout_s=settings.confirm_timeout_s,
                memo_nonce_ttl=timedelta(seconds=settings.memo_nonce_ttl_s),
                claim_ttl_s=settings.settle_lock_ttl_s,
            ),
            watcher=watcher,
            redis=runtime.redis,
        )
        app.state.facilitator = facilitator
        app.state.settlement = settlement
        runtime.readiness_checks["solana_rpc"] = _rpc_ready(rpc)
        runtime.readiness_reports["fee_payers"] = _fee_payer_report(facilitator)
        log.info(
            "facilitator_configured",
            network=facilitator.network.cluster.caip2,
            fee_payers=facilitator.fee_payers.addresses,
            mints=sorted(facilitator.network.allowed_mints),
        )
        try:
            async with watching(watcher), running_tasks(_tasks(settings, runtime, settlement)):
                yield
        finally:
            await rpc.aclose()

    return facilitator_lifespan


def _rpc_ready(rpc: SolanaRpc) -> ReadinessCheck:
    async def check() -> str | None:
        try:
            await rpc.health()
        except Exception as exc:  # any failure means not ready
            return f"Solana RPC {rpc.url} unhealthy: {exc}"
        return None

    return check


def _fee_payer_report(facilitator: Facilitator) -> ReadinessReport:
    async def report() -> dict[str, Any]:
        fee_payers = facilitator.fee_payers
        return {
            address: {
                "balance_lamports": fee_payers.balance(address),
                "below_floor": fee_payers.below_floor(address),
            }
            for address in fee_payers.addresses
        }

    return report


def create_app(settings: FacilitatorSettings | None = None) -> FastAPI:
    """The facilitator service."""
    settings = settings or load_settings()
    return create_kassa_app(
        AppSpec(
            settings=settings,
            title="Kassa facilitator",
            description=(
                "x402 payment verification and settlement on Solana (SPL Token and Token-2022), "
                "with durable replay protection and payment records."
            ),
            routers=(router, payments_router),
            migrations=MIGRATIONS,
            idempotency_table=idempotency_keys,
            lifespan_extension=_lifespan(settings),
        )
    )
