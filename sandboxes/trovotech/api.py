"""Routes: the TrovoTech API (at ``/`` and ``/v1``), the admin API under ``/sandbox``, health.

Handlers are thin: authorise, call one sandbox operation, return. POST operations go through
:func:`~sandboxes.trovotech.idempotency.once`, which honours ``Idempotency-Key``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, status
from starlette.responses import JSONResponse, Response

from sandboxes.trovotech.auth import authorize_issuer, require_api_key
from sandboxes.trovotech.config import Faults
from sandboxes.trovotech.errors import TrovoTechError, bad_request
from sandboxes.trovotech.idempotency import once
from sandboxes.trovotech.sandbox import Sandbox
from sandboxes.trovotech.schemas import (
    ConnectionRead,
    DeliveryRead,
    DeliveryStatus,
    ErrorRead,
    EventCreate,
    EventRead,
    MintCreate,
    MintRead,
    PayoutCreate,
    PayoutRead,
    RedeliverRequest,
    RequestRecordRead,
    StateRead,
    TelemetryRead,
    TelemetrySync,
    TokensRead,
    TransferCreate,
    TransferRead,
    WalletCreate,
    WalletRead,
    bantu_address,
)


def get_sandbox(request: Request) -> Sandbox:
    """The app's sandbox (503 while it starts)."""
    sandbox: Sandbox | None = request.app.state.sandbox
    if sandbox is None:
        raise TrovoTechError(503, "error-service-unavailable", "The sandbox is starting.")
    return sandbox


SandboxDep = Annotated[Sandbox, Depends(get_sandbox)]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorRead} for code in (401, *statuses)}


operations_router = APIRouter(tags=["operations"])
connection_router = APIRouter(tags=["trovotech"], dependencies=[Depends(require_api_key)])
api_router = APIRouter(tags=["trovotech"], dependencies=[Depends(require_api_key)])
sandbox_router = APIRouter(prefix="/sandbox", tags=["sandbox"])


@operations_router.get("/health", summary="Liveness: the process is up")
async def health() -> dict[str, str]:
    """Always ok."""
    return {"status": "ok"}


@operations_router.get("/ready", summary="Readiness: the ledger is open")
async def ready(request: Request) -> Response:
    """200 once the sandbox exists."""
    if request.app.state.sandbox is None:
        return JSONResponse({"status": "not_ready"}, status_code=503)
    return JSONResponse({"status": "ready"})


# -- TrovoTech API -----------------------------------------------------------------------------


@connection_router.api_route(
    "/v1", methods=["GET", "HEAD"], summary="Connection test", responses=_errors()
)
@connection_router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def connection_test(sandbox: SandboxDep) -> ConnectionRead:
    """What FleetFi's client did: GET (or HEAD) the base URL with the API key; 200 = connected."""
    return sandbox.connection()


@api_router.post(
    "/wallet/create",
    status_code=status.HTTP_201_CREATED,
    response_model=WalletRead,
    summary="Create an investor's custodial wallet (200 with it when it exists)",
    responses={200: {"model": WalletRead}, **_errors(400, 403, 409, 422)},
)
async def create_wallet(body: WalletCreate, request: Request, sandbox: SandboxDep) -> Response:
    authorize_issuer(sandbox.settings, body.issuer_id)
    return await once(
        request,
        sandbox.idempotency,
        lambda: sandbox.create_wallet(body),
        sandbox.settings.require_idempotency_key,
    )


@api_router.get("/wallet/{wallet_id}", summary="A wallet by id or address", responses=_errors(404))
async def get_wallet(wallet_id: str, sandbox: SandboxDep) -> WalletRead:
    return await sandbox.wallet(wallet_id)


@api_router.post(
    "/token/mint",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MintRead,
    summary="Mint a fraction of an asset (202 pending; 201 when confirmed at once)",
    responses={201: {"model": MintRead}, **_errors(400, 403, 404, 409, 422)},
)
async def mint_token(body: MintCreate, request: Request, sandbox: SandboxDep) -> Response:
    authorize_issuer(sandbox.settings, body.issuer_id)
    return await once(
        request,
        sandbox.idempotency,
        lambda: sandbox.mint(body),
        sandbox.settings.require_idempotency_key,
    )


@api_router.post(
    "/token/transfer",
    response_model=TransferRead,
    summary="Move a confirmed token to another custodial wallet",
    responses=_errors(400, 403, 404, 409, 422),
)
async def transfer_token(body: TransferCreate, request: Request, sandbox: SandboxDep) -> Response:
    authorize_issuer(sandbox.settings, body.issuer_id)
    return await once(
        request,
        sandbox.idempotency,
        lambda: sandbox.transfer(body),
        sandbox.settings.require_idempotency_key,
    )


@api_router.get(
    "/tokens/my",
    summary="Tokens of a wallet (?wallet= or X-TW-PUBLIC-KEY); all tokens without one",
    responses=_errors(400, 404),
)
async def my_tokens(
    sandbox: SandboxDep,
    wallet: Annotated[str | None, Query(description="The holder's G... address.")] = None,
    public_key: Annotated[str | None, Header(alias="X-TW-PUBLIC-KEY")] = None,
) -> TokensRead:
    address = wallet or public_key
    if address is not None:
        try:
            bantu_address(address)
        except ValueError as exc:
            raise bad_request("error-invalid-wallet", str(exc), "wallet") from exc
    return await sandbox.tokens(address)


@api_router.post(
    "/payout/distribute",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PayoutRead,
    summary="Distribute revenue over tokens; payout.completed or payout.failed follows",
    responses=_errors(400, 403, 404, 409),
)
async def distribute_payout(body: PayoutCreate, request: Request, sandbox: SandboxDep) -> Response:
    authorize_issuer(sandbox.settings, body.issuer_id)
    return await once(
        request,
        sandbox.idempotency,
        lambda: sandbox.distribute(body),
        sandbox.settings.require_idempotency_key,
    )


@api_router.get("/payout/{payout_id}", summary="A payout by id", responses=_errors(404))
async def get_payout(payout_id: str, sandbox: SandboxDep) -> PayoutRead:
    return await sandbox.payout(payout_id)


@api_router.post(
    "/telemetry/sync",
    response_model=TelemetryRead,
    summary="Anchor an asset's telemetry snapshot",
    responses=_errors(400, 403),
)
async def sync_telemetry(body: TelemetrySync, request: Request, sandbox: SandboxDep) -> Response:
    authorize_issuer(sandbox.settings, body.issuer_id)
    return await once(
        request,
        sandbox.idempotency,
        lambda: sandbox.sync_telemetry(body),
        sandbox.settings.require_idempotency_key,
    )


# -- admin API (no key: a local sandbox's own controls) ----------------------------------------


@sandbox_router.get("/state", summary="Ledger, wallets, tokens, assets, payouts, transfers")
async def state(sandbox: SandboxDep) -> StateRead:
    return await sandbox.state()


@sandbox_router.get("/faults", summary="The faults in force")
async def get_faults(sandbox: SandboxDep) -> Faults:
    return sandbox.faults.current


@sandbox_router.post(
    "/faults", summary="Change the fields given, keep the others", responses=_errors(400)
)
async def set_faults(body: Faults, sandbox: SandboxDep) -> Faults:
    return sandbox.faults.update(body)


@sandbox_router.delete("/faults", summary="Back to the configured faults")
async def reset_faults(sandbox: SandboxDep) -> Faults:
    return sandbox.faults.reset()


@sandbox_router.get("/deliveries", summary="Webhook deliveries, oldest first")
async def deliveries(
    sandbox: SandboxDep,
    event_type: str | None = None,
    event_id: str | None = None,
    delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
) -> list[DeliveryRead]:
    return [
        delivery.read()
        for delivery in list(sandbox.webhooks.deliveries)
        if (event_type is None or delivery.event.event_type == event_type)
        and (event_id is None or delivery.event.event_id == event_id)
        and (delivery_status is None or delivery.status == delivery_status)
    ]


@sandbox_router.delete(
    "/deliveries", status_code=status.HTTP_204_NO_CONTENT, summary="Forget past deliveries"
)
async def clear_deliveries(sandbox: SandboxDep) -> None:
    sandbox.webhooks.clear()


@sandbox_router.post(
    "/webhooks",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Emit any event (unknown types too), signed and delivered like the real ones",
)
async def emit_event(body: EventCreate, sandbox: SandboxDep) -> EventRead:
    return sandbox.emit_event(body)


@sandbox_router.post(
    "/webhooks/{event_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Deliver a past event again, `times` deliveries at once",
    responses=_errors(404),
)
async def redeliver(
    event_id: str, sandbox: SandboxDep, body: RedeliverRequest | None = None
) -> list[DeliveryRead]:
    return sandbox.redeliver(event_id, (body or RedeliverRequest()).times)


@sandbox_router.get("/requests", summary="TrovoTech API requests as received, oldest first")
async def requests(sandbox: SandboxDep, path: str | None = None) -> list[RequestRecordRead]:
    return [
        record
        for record in list(sandbox.requests.records)
        if path is None or record.path.endswith(path)
    ]


@sandbox_router.delete(
    "/requests", status_code=status.HTTP_204_NO_CONTENT, summary="Forget past requests"
)
async def clear_requests(sandbox: SandboxDep) -> None:
    sandbox.requests.clear()
