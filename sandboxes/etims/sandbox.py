"""One eTIMS call from request to reply: faults, identification, parsing, the operation.

The order is KRA's: headers (900 missing, 910 invalid) before the body (911 empty, 910 not a
JSON object), then the operation, whose first bad field answers 910. Injected latency and
error faults come first of all, as a congested or failing KRA would answer before looking at
the request; after-commit faults strike once the operation has stored its result.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandboxes.etims.config import EtimsSandboxSettings
from sandboxes.etims.context import Call, Profile
from sandboxes.etims.envelope import (
    Reply,
    ResultCode,
    envelope,
    nairobi_now,
    render_json,
)
from sandboxes.etims.faults import FaultKind, FaultPlan, FaultRule
from sandboxes.etims.fields import BRANCH_PATTERN, PIN_PATTERN, Fields, ParameterError
from sandboxes.etims.protocol import Operation
from sandboxes.etims.state import Device, SandboxState
from shared.logging import get_logger

log = get_logger(__name__)

JSON = "application/json"
# The headers KRA's OSCU API identifies callers by (HTTP header names are case-insensitive).
HEADER_TIN, HEADER_BRANCH, HEADER_KEY = "tin", "bhfId", "cmcKey"


class Refusal(Exception):
    """A call answered before its operation runs (no header, no body, unknown device)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.message or reply.code.value)
        self.reply = reply


class DroppedConnection(Response):
    """Sends the status line and headers of a reply, then nothing: the connection closes.

    The app returns without completing the response; uvicorn then closes the transport ("ASGI
    callable returned without completing response"), and the client reads a truncated reply.
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", JSON.encode()), (b"content-length", b"512")],
            }
        )


class EtimsSandbox:
    """The sandbox's state and faults, and the way every eTIMS call is answered."""

    def __init__(self, settings: EtimsSandboxSettings) -> None:
        self.settings = settings
        self.state = SandboxState(settings)
        self.faults = FaultPlan.from_rates(
            settings.latency_ms, settings.hang_ms, settings.fault_rates, settings.fault_seed
        )

    async def answer(
        self, operation: Operation, profile: Profile, headers: Mapping[str, str], raw: bytes
    ) -> Response:
        """The HTTP reply to one call of ``operation``."""
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        with self.state.lock:
            fault = self.faults.draw(operation.name)
            if fault is not None and not fault.kind.after_commit:
                reply = Reply(ResultCode(fault.kind.value))
                self._count(operation, reply, 0.0, fault)
                return self._render(reply)
        started = time.perf_counter()
        with self.state.lock:
            reply = self._run(operation, profile, headers, raw)
            self._count(operation, reply, time.perf_counter() - started, fault)
        response = self._render(reply)
        if fault is None:
            return response
        return await self._after_commit(fault, response, operation)

    async def _after_commit(
        self, fault: FaultRule, response: Response, operation: Operation
    ) -> Response:
        log.info("etims_fault_after_commit", operation=operation.name, fault=fault.kind.value)
        if fault.kind is FaultKind.DROP_AFTER_COMMIT:
            return DroppedConnection()
        await asyncio.sleep(self.faults.hang_seconds(fault))
        return response

    def method_error(self) -> Response:
        """912 for a call that is not a POST."""
        return self._render(Reply(ResultCode.METHOD_ERROR))

    def _run(
        self, operation: Operation, profile: Profile, headers: Mapping[str, str], raw: bytes
    ) -> Reply:
        now = nairobi_now()
        try:
            device = None
            if operation.identifies_device and profile is Profile.OSCU:
                device = self._oscu_caller(headers, now)
            body = _parse(raw)
            if operation.identifies_device and profile is Profile.VSCU:
                device = self._vscu_caller(body, headers)
            return operation.handler(Call(self.state, profile, Fields(body), now, device))
        except Refusal as refused:
            return refused.reply
        except ParameterError as error:
            return Reply(ResultCode.PARAMETER_ERROR, message=error.message)
        except Exception:
            # A sandbox bug still answers like KRA (999, HTTP 200); the log has the trace.
            log.exception("etims_operation_failed", operation=operation.name)
            return Reply(ResultCode.UNKNOWN_ERROR)

    def _oscu_caller(self, headers: Mapping[str, str], now: datetime) -> Device:
        tin = headers.get(HEADER_TIN)
        bhf_id = headers.get(HEADER_BRANCH)
        cmc_key = headers.get(HEADER_KEY)
        if not (tin and bhf_id and cmc_key):
            missing = [
                name
                for name, value in (
                    (HEADER_TIN, tin),
                    (HEADER_BRANCH, bhf_id),
                    (HEADER_KEY, cmc_key),
                )
                if not value
            ]
            raise Refusal(
                Reply(
                    ResultCode.NO_HEADER,
                    message=f"There is no Header information: {', '.join(missing)}",
                )
            )
        _check_identity(tin, bhf_id, "header ")
        device = self.state.oscu_for_key(tin, bhf_id, cmc_key, now)
        if device is None:
            raise ParameterError(
                "cmcKey",
                f"is not the key of an initialised OSCU device of {tin} branch {bhf_id}",
            )
        return device

    def _vscu_caller(self, body: dict[str, Any], headers: Mapping[str, str]) -> Device:
        tin = body.get("tin") or headers.get(HEADER_TIN)
        bhf_id = body.get("bhfId") or headers.get(HEADER_BRANCH)
        if not isinstance(tin, str) or not tin:
            raise ParameterError("tin", "is required (a VSCU request carries tin and bhfId)")
        if not isinstance(bhf_id, str) or not bhf_id:
            raise ParameterError("bhfId", "is required (a VSCU request carries tin and bhfId)")
        _check_identity(tin, bhf_id, "")
        device = self.state.branch_vscu(tin, bhf_id)
        if device is None:
            raise Refusal(
                Reply(
                    ResultCode.INVALID_DEVICE,
                    message=f"It is not valid device: no VSCU at {tin} branch {bhf_id}",
                )
            )
        return device

    def _count(
        self, operation: Operation, reply: Reply, seconds: float, fault: FaultRule | None
    ) -> None:
        stats = self.state.endpoint_stats(operation.name)
        stats.calls += 1
        stats.results[reply.code.value] += 1
        stats.busy_seconds += seconds
        if fault is not None:
            stats.faults[fault.kind.value] += 1

    def _render(self, reply: Reply) -> Response:
        return Response(render_json(envelope(reply, nairobi_now())), media_type=JSON)


def _check_identity(tin: str, bhf_id: str, where: str) -> None:
    if not PIN_PATTERN.fullmatch(tin):
        raise ParameterError(f"{where}tin", f"must be a KRA PIN like P051234567X, got {tin!r}")
    if not BRANCH_PATTERN.fullmatch(bhf_id):
        raise ParameterError(f"{where}bhfId", f"must be 2 digits, got {bhf_id!r}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _parse(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object with exact decimals."""
    if not raw.strip():
        raise Refusal(Reply(ResultCode.NO_BODY))
    try:
        value = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ParameterError("body", f"is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ParameterError("body", "must be a JSON object")
    return value
