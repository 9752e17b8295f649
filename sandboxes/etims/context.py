"""What an operation is given: the state, the request body, the caller's device, the time."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandboxes.etims.fields import Fields
from sandboxes.etims.state import Branch, Device, SandboxState


class Profile(enum.StrEnum):
    """Which face of the sandbox was called: KRA's OSCU API or a taxpayer's VSCU server."""

    OSCU = "OSCU"
    VSCU = "VSCU"


@dataclass(frozen=True)
class Call:
    """One eTIMS call, identified (except initialisation) and parsed."""

    state: SandboxState
    profile: Profile
    body: Fields
    now: datetime
    device: Device | None = None

    @property
    def caller(self) -> Device:
        """The calling device (every operation but initialisation has one)."""
        assert self.device is not None, "operation needs an identified device"
        return self.device

    @property
    def tin(self) -> str:
        """The caller's PIN."""
        assert self.caller.tin is not None
        return self.caller.tin

    @property
    def bhf_id(self) -> str:
        """The caller's branch."""
        assert self.caller.bhf_id is not None
        return self.caller.bhf_id

    @property
    def branch(self) -> Branch:
        """The caller's branch data."""
        return self.state.branch(self.tin, self.bhf_id, self.now)

    def last_request(self) -> datetime:
        """``lastReqDt`` of a list call: what changed at or after it is returned."""
        return self.body.required_timestamp("lastReqDt")


def pick(raw: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The ``keys`` of a request, in that order, ``None`` where absent."""
    return {key: raw.get(key) for key in keys}
