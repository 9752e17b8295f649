"""Requests and replies of the sandbox's own API (``/sandbox/...``): plain JSON, snake_case.

These are Kassa-style endpoints for tests, demos and benchmarks to steer the sandbox; the eTIMS
protocol itself is KRA's JSON (see :mod:`sandboxes.etims.protocol`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from sandboxes.etims.protocol import OPERATION_NAMES

FaultKindName = Literal["894", "990", "999", "timeout_after_commit", "drop_after_commit"]
DeviceKindName = Literal["OSCU", "VSCU"]
PIN = r"^[A-Z]\d{9}[A-Z]$"
BRANCH = r"^\d{2}$"
MAX_DELAY_MS = 600_000


class FaultRuleCreate(BaseModel):
    """One fault: what happens, to which operations, how often."""

    kind: FaultKindName = Field(
        description=(
            "894/990/999: answer that code at once, storing nothing; timeout_after_commit: "
            "store, then reply after hang_ms; drop_after_commit: store, then close the "
            "connection without a body."
        )
    )
    count: int | None = Field(
        default=None, ge=1, description="Fire on the next N matching calls; null: no limit."
    )
    rate: float = Field(default=1.0, ge=0.0, le=1.0, description="Probability per matching call.")
    operations: list[str] | None = Field(
        default=None,
        description="OSCU operation names (saveTrnsSalesOsdc, ...); null: every operation.",
    )
    hang_ms: int | None = Field(
        default=None, ge=0, le=MAX_DELAY_MS, description="Delay of a timeout_after_commit reply."
    )

    @field_validator("operations")
    @classmethod
    def _known_operations(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - OPERATION_NAMES)
        if unknown:
            known = ", ".join(sorted(OPERATION_NAMES))
            raise ValueError(f"unknown operations {', '.join(unknown)}; known: {known}")
        return value


class FaultPlanUpdate(BaseModel):
    """The whole fault plan: it replaces the current one."""

    latency_ms: int = Field(
        default=0, ge=0, le=MAX_DELAY_MS, description="Added before every eTIMS reply."
    )
    hang_ms: int | None = Field(
        default=None, ge=0, le=MAX_DELAY_MS, description="Default timeout_after_commit delay."
    )
    rules: list[FaultRuleCreate] = Field(
        default_factory=list, description="Tried in order; a call gets at most one fault."
    )


class FaultRuleRead(BaseModel):
    """A fault rule and how often it has fired."""

    kind: FaultKindName
    remaining: int | None
    rate: float
    operations: list[str] | None
    hang_ms: int | None
    fired: int


class FaultPlanRead(BaseModel):
    """The current fault plan."""

    latency_ms: int
    hang_ms: int
    rules: list[FaultRuleRead]


class DeviceRegister(BaseModel):
    """A serial KRA approves, optionally for one taxpayer and branch."""

    serial: str = Field(min_length=1, max_length=100, description="dvcSrlNo.")
    kind: DeviceKindName = "OSCU"
    tin: str | None = Field(default=None, pattern=PIN, description="Only this PIN may use it.")
    bhf_id: str | None = Field(default=None, pattern=BRANCH, description="Only this branch.")
    taxpayer_name: str | None = Field(
        default=None, max_length=60, description="taxprNm in the init reply."
    )


class DeviceRead(BaseModel):
    """A device as the sandbox sees it (never its cmcKey)."""

    serial: str
    kind: DeviceKindName
    tin: str | None
    bhf_id: str | None
    taxpayer_name: str | None
    initialized: bool
    initialized_at: str | None = Field(description="yyyyMMddHHmmss, Nairobi.")
    dvc_id: str | None
    sdc_id: str | None
    mrc_no: str | None
    receipt_counters: dict[str, int] = Field(description="curRcptNo per label (NS, NR, ...).")
    total_receipts: int = Field(description="totRcptNo.")
    sales: int = Field(description="Accepted sales and credit notes.")
    last_invc_no: int | None


class CodeUpsert(BaseModel):
    """A code to add or change; its class then counts as changed now."""

    cd_cls: str = Field(min_length=2, max_length=2, description="Code class, e.g. 04.")
    cd: str = Field(min_length=1, max_length=5)
    name: str = Field(min_length=1, max_length=60, description="cdNm.")
    user_code_1: str | None = Field(
        default=None, max_length=20, description="userDfnCd1 (the rate of a tax type)."
    )
    use: bool = Field(default=True, description="useYn.")


class ItemClassUpsert(BaseModel):
    """An item class to add or change."""

    item_cls_cd: str = Field(min_length=1, max_length=10)
    name: str = Field(min_length=1, max_length=200)
    level: int = Field(default=5, ge=1, le=5)
    tax_type: Literal["A", "B", "C", "D", "E"] | None = None


class BranchRead(BaseModel):
    """What a branch has saved."""

    tin: str
    bhf_id: str
    items: int
    purchases: int
    stock_moves: int
    stock_levels: dict[str, str] = Field(description="Quantity per itemCd after movements.")


class OperationStatsRead(BaseModel):
    """Calls of one operation."""

    calls: int
    results: dict[str, int] = Field(description="Replies by resultCd.")
    faults: dict[str, int] = Field(description="Injected faults by kind.")
    busy_seconds: float = Field(description="Time spent answering, without injected delays.")


class SandboxStateRead(BaseModel):
    """Devices, branches, faults and per-operation counters."""

    devices: list[DeviceRead]
    branches: list[BranchRead]
    faults: FaultPlanRead
    operations: dict[str, OperationStatsRead]


class CodeClassRead(BaseModel):
    """A code class as selectCodeList returns it."""

    entry: dict[str, Any]
