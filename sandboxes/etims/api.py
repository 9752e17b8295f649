"""Routes: the eTIMS operations on their OSCU and VSCU paths, ``/sandbox/...``, health.

eTIMS routes answer KRA's envelope with HTTP 200 whatever happens (912 for a method other than
POST). The sandbox's own routes are Kassa-style JSON with problem+json errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from starlette.responses import JSONResponse, Response

from sandboxes.etims.codes import UnknownCodeClass
from sandboxes.etims.context import Profile
from sandboxes.etims.envelope import kra_datetime, nairobi_now
from sandboxes.etims.faults import FaultKind, FaultRule
from sandboxes.etims.protocol import OPERATIONS, Operation
from sandboxes.etims.sandbox import EtimsSandbox
from sandboxes.etims.schemas import (
    BranchRead,
    CodeClassRead,
    CodeUpsert,
    DeviceRead,
    DeviceRegister,
    FaultPlanRead,
    FaultPlanUpdate,
    FaultRuleRead,
    ItemClassUpsert,
    OperationStatsRead,
    SandboxStateRead,
)
from sandboxes.etims.state import Device, DeviceKind
from shared.errors import Conflict, NotFound, ServiceUnavailable, problem_responses

_OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE"]
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


class SandboxStarting(ServiceUnavailable):
    """The lifespan has not built the sandbox yet."""

    slug = "sandbox-starting"
    title = "Sandbox starting"


class UnknownCodeClassError(NotFound):
    """A code for a class the catalog does not have."""

    slug = "unknown-code-class"
    title = "No such code class"


class DeviceInUse(Conflict):
    """Registering would change a device another branch already initialised."""

    slug = "device-in-use"
    title = "Device already initialised for another branch"


def get_sandbox(request: Request) -> EtimsSandbox:
    """The app's sandbox (503 while it starts)."""
    sandbox: EtimsSandbox | None = request.app.state.sandbox
    if sandbox is None:
        raise SandboxStarting("The sandbox is still starting.")
    return sandbox


SandboxDep = Annotated[EtimsSandbox, Depends(get_sandbox)]

operations_router = APIRouter(tags=["operations"])
admin_router = APIRouter(prefix="/sandbox", tags=["sandbox"])


@operations_router.get("/health", summary="Liveness: the process is up")
async def health() -> dict[str, str]:
    """Always ok while the process runs."""
    return {"status": "ok"}


@operations_router.get("/ready", summary="Readiness: the sandbox answers eTIMS calls")
async def ready(request: Request) -> Response:
    """200 once the sandbox is built (what ``kassa run`` waits for)."""
    if request.app.state.sandbox is None:
        return JSONResponse({"status": "not_ready"}, status_code=503)
    return JSONResponse({"status": "ready"})


def _operation_route(
    operation: Operation, profile: Profile
) -> Callable[[Request, EtimsSandbox], Awaitable[Response]]:
    async def handle(request: Request, sandbox: SandboxDep) -> Response:
        """KRA's envelope, HTTP 200, whatever the outcome."""
        return await sandbox.answer(operation, profile, request.headers, await request.body())

    return handle


async def _method_error(sandbox: SandboxDep) -> Response:
    return sandbox.method_error()


def protocol_router() -> APIRouter:
    """Every operation on its OSCU path and its VSCU path."""
    router = APIRouter()
    for profile in Profile:
        for operation in OPERATIONS:
            path = operation.path(profile)
            router.add_api_route(
                path,
                _operation_route(operation, profile),
                methods=["POST"],
                summary=operation.summary,
                tags=[f"eTIMS {profile.value}"],
                response_class=Response,
                name=f"{profile.value.lower()}_{operation.name}",
                openapi_extra=_BODY_DOC,
            )
            router.add_api_route(
                path, _method_error, methods=_OTHER_METHODS, include_in_schema=False
            )
    return router


def _device_read(device: Device) -> DeviceRead:
    numbers = device.numbers
    return DeviceRead(
        serial=device.serial,
        kind=device.kind.value,
        tin=device.tin,
        bhf_id=device.bhf_id,
        taxpayer_name=device.taxpayer_name,
        initialized=device.initialized,
        initialized_at=kra_datetime(device.initialized_at) if device.initialized_at else None,
        dvc_id=numbers.dvc_id if numbers else None,
        sdc_id=numbers.sdc_id if numbers else None,
        mrc_no=numbers.mrc_no if numbers else None,
        receipt_counters=dict(device.receipt_counters),
        total_receipts=device.total_receipts,
        sales=len(device.sales),
        last_invc_no=max(device.sales) if device.sales else None,
    )


def _fault_plan_read(sandbox: EtimsSandbox) -> FaultPlanRead:
    plan = sandbox.faults
    return FaultPlanRead(
        latency_ms=plan.latency_ms,
        hang_ms=plan.hang_ms,
        rules=[
            FaultRuleRead(
                kind=rule.kind.value,
                remaining=rule.remaining,
                rate=rule.rate,
                operations=sorted(rule.operations) if rule.operations is not None else None,
                hang_ms=rule.hang_ms,
                fired=rule.fired,
            )
            for rule in plan.rules
        ],
    )


@admin_router.get("/state", summary="Devices, branches, faults and per-operation counters")
async def state(sandbox: SandboxDep) -> SandboxStateRead:
    """Everything a test or a benchmark may want to count (no cmcKeys)."""
    with sandbox.state.lock:
        memory = sandbox.state
        return SandboxStateRead(
            devices=[_device_read(device) for device in memory.devices.values()],
            branches=[
                BranchRead(
                    tin=branch.tin,
                    bhf_id=branch.bhf_id,
                    items=len(branch.items),
                    purchases=len(branch.purchases),
                    stock_moves=len(branch.stock_moves),
                    stock_levels={k: str(v) for k, v in branch.stock_levels.items()},
                )
                for branch in memory.branches.values()
            ],
            faults=_fault_plan_read(sandbox),
            operations={
                name: OperationStatsRead(
                    calls=stats.calls,
                    results=dict(stats.results),
                    faults=dict(stats.faults),
                    busy_seconds=stats.busy_seconds,
                )
                for name, stats in memory.stats.items()
            },
        )


@admin_router.get("/faults", summary="The current fault plan")
async def get_faults(sandbox: SandboxDep) -> FaultPlanRead:
    """Latency, rules, and how often each rule has fired."""
    with sandbox.state.lock:
        return _fault_plan_read(sandbox)


@admin_router.post("/faults", summary="Replace the fault plan (latency and rules)")
async def set_faults(body: FaultPlanUpdate, sandbox: SandboxDep) -> FaultPlanRead:
    """Install a new plan; calls already waiting keep the fault they drew."""
    rules = [
        FaultRule(
            kind=FaultKind(rule.kind),
            remaining=rule.count,
            rate=rule.rate,
            operations=frozenset(rule.operations) if rule.operations is not None else None,
            hang_ms=rule.hang_ms,
        )
        for rule in body.rules
    ]
    with sandbox.state.lock:
        sandbox.faults.replace(body.latency_ms, body.hang_ms, rules)
        return _fault_plan_read(sandbox)


@admin_router.delete("/faults", summary="No latency, no faults")
async def clear_faults(sandbox: SandboxDep) -> FaultPlanRead:
    """Remove every fault and the latency."""
    with sandbox.state.lock:
        sandbox.faults.replace(0, None, [])
        return _fault_plan_read(sandbox)


def _conflicts(existing: Device, body: DeviceRegister) -> bool:
    """Whether registering ``body`` would change a device already in use."""
    if not existing.initialized:
        return False
    wanted = (body.kind, body.tin or existing.tin, body.bhf_id or existing.bhf_id)
    return wanted != (existing.kind.value, existing.tin, existing.bhf_id)


@admin_router.post(
    "/devices",
    status_code=status.HTTP_201_CREATED,
    summary="Approve a device serial (as KRA does after the taxpayer applies)",
    responses=problem_responses(DeviceInUse),
)
async def register_device(body: DeviceRegister, sandbox: SandboxDep) -> DeviceRead:
    """Approve a serial; a repeat before initialisation replaces the registration."""
    with sandbox.state.lock:
        existing = sandbox.state.devices.get(body.serial)
        if existing is not None and _conflicts(existing, body):
            raise DeviceInUse(
                f"{body.serial} is initialised for {existing.tin} branch {existing.bhf_id}."
            )
        device = sandbox.state.register_device(
            body.serial, DeviceKind(body.kind), body.tin, body.bhf_id, body.taxpayer_name
        )
        return _device_read(device)


@admin_router.post(
    "/codes",
    summary="Add or change a code (e.g. a tax rate); selectCodeList returns its class again",
    responses=problem_responses(UnknownCodeClassError),
)
async def upsert_code(body: CodeUpsert, sandbox: SandboxDep) -> CodeClassRead:
    """Change the code lists (a new rate applies to the next sale)."""
    with sandbox.state.lock:
        try:
            code_class = sandbox.state.catalog.upsert_code(
                body.cd_cls, body.cd, body.name, body.user_code_1, body.use, nairobi_now()
            )
        except UnknownCodeClass as exc:
            raise UnknownCodeClassError(f"There is no code class {body.cd_cls}.") from exc
        return CodeClassRead(entry=code_class.as_json())


@admin_router.post("/item-classes", summary="Add or change an item class")
async def upsert_item_class(body: ItemClassUpsert, sandbox: SandboxDep) -> CodeClassRead:
    """Change the item classes."""
    with sandbox.state.lock:
        item_class = sandbox.state.catalog.upsert_item_class(
            body.item_cls_cd, body.name, body.level, body.tax_type, nairobi_now()
        )
        return CodeClassRead(entry=item_class.as_json())


@admin_router.post("/reset", summary="Forget every device, sale, item and counter; clear faults")
async def reset(sandbox: SandboxDep) -> SandboxStateRead:
    """Back to a fresh start (approved serials stay approved)."""
    with sandbox.state.lock:
        sandbox.state.reset()
        sandbox.faults.replace(0, None, [])
    return await state(sandbox)
