"""Everything the sandbox remembers, in memory: devices, branches and what they sent.

One :class:`SandboxState` per app. Operations run under its ``lock`` (a ``threading.Lock``, so
the state is safe from threads as well as from the event loop); each runs to completion
without awaiting, so a sale's number check, counters and storage happen as one step. State
is per process: run the sandbox with one worker.

A device is approved by KRA when its serial is seeded (settings), registered through
``POST /sandbox/devices``, or starts with an auto-approved prefix. Initialisation binds it to
the taxpayer and branch that initialised it (unless registration named them) and issues its
cmcKey. Branch data (items, purchases, stock) belongs to (tin, bhfId); sales, invoice numbers
and receipt counters belong to the device.
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandboxes.etims.codes import CodeCatalog
from sandboxes.etims.config import EtimsSandboxSettings
from sandboxes.etims.signing import DeviceNumbers, communication_key, device_numbers


class DeviceKind(enum.StrEnum):
    """OSCU (KRA-hosted control unit) or VSCU (the taxpayer's own server)."""

    OSCU = "OSCU"
    VSCU = "VSCU"


@dataclass(frozen=True)
class StoredSale:
    """An accepted sale: the request as received, and the receipt KRA answered."""

    request: dict[str, Any]
    receipt: dict[str, Any]
    accepted_at: datetime


@dataclass
class Device:
    """A device KRA knows, and once initialised its key, numbers, counters and sales."""

    serial: str
    kind: DeviceKind
    tin: str | None = None
    bhf_id: str | None = None
    taxpayer_name: str | None = None
    cmc_key: str | None = None
    numbers: DeviceNumbers | None = None
    initialized_at: datetime | None = None
    receipt_counters: dict[str, int] = field(default_factory=dict)
    total_receipts: int = 0
    sales: dict[int, StoredSale] = field(default_factory=dict)

    @property
    def initialized(self) -> bool:
        """Whether the device has been given its cmcKey."""
        return self.cmc_key is not None

    def next_receipt_numbers(self, label: str) -> tuple[int, int]:
        """Count one more receipt of ``label``: (curRcptNo, totRcptNo)."""
        self.receipt_counters[label] = self.receipt_counters.get(label, 0) + 1
        self.total_receipts += 1
        return self.receipt_counters[label], self.total_receipts


@dataclass(frozen=True)
class Record:
    """A saved request of a branch (item, purchase, stock movement ...) and when it changed."""

    fields: dict[str, Any]
    modified: datetime


@dataclass
class Branch:
    """What a taxpayer's branch has saved."""

    tin: str
    bhf_id: str
    opened_at: datetime
    items: dict[str, Record] = field(default_factory=dict)
    compositions: dict[tuple[str, str], Record] = field(default_factory=dict)
    customers: dict[str, Record] = field(default_factory=dict)
    users: dict[str, Record] = field(default_factory=dict)
    insurances: dict[str, Record] = field(default_factory=dict)
    purchases: dict[int, Record] = field(default_factory=dict)
    stock_moves: dict[int, Record] = field(default_factory=dict)
    stock_master: dict[str, Record] = field(default_factory=dict)
    stock_levels: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class EndpointStats:
    """Calls of one operation, by result code, and the time spent answering them."""

    calls: int = 0
    results: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    busy_seconds: float = 0.0  # handling only: injected latency and hangs are not counted


class SandboxState:
    """The sandbox's memory."""

    def __init__(self, settings: EtimsSandboxSettings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.catalog = CodeCatalog()
        self.devices: dict[str, Device] = {}
        self.branches: dict[tuple[str, str], Branch] = {}
        self.stats: dict[str, EndpointStats] = {}
        self._by_key: dict[str, Device] = {}
        self._vscu_by_branch: dict[tuple[str, str], Device] = {}
        # Accepted sales by the buyer's PIN: the buyer's selectTrnsPurchaseSalesList.
        self.sales_by_buyer: dict[str, list[tuple[Device, StoredSale]]] = {}
        self.seed_devices()

    def seed_devices(self) -> None:
        """Approve the serials named in the settings."""
        for serial in self.settings.oscu_serials:
            self.devices.setdefault(serial, Device(serial, DeviceKind.OSCU))
        for serial in self.settings.vscu_serials:
            self.devices.setdefault(serial, Device(serial, DeviceKind.VSCU))

    def reset(self) -> None:
        """Forget everything but the code lists' seed and the approved serials."""
        self.catalog = CodeCatalog()
        self.devices.clear()
        self.branches.clear()
        self.stats.clear()
        self._by_key.clear()
        self._vscu_by_branch.clear()
        self.sales_by_buyer.clear()
        self.seed_devices()

    def approved_device(self, serial: str) -> Device | None:
        """The device with this serial if KRA approved it (seeded, registered or prefixed)."""
        device = self.devices.get(serial)
        if device is not None:
            return device
        for kind, prefix in (
            (DeviceKind.OSCU, self.settings.oscu_serial_prefix),
            (DeviceKind.VSCU, self.settings.vscu_serial_prefix),
        ):
            if prefix and serial.startswith(prefix) and len(serial) > len(prefix):
                device = Device(serial, kind)
                self.devices[serial] = device
                return device
        return None

    def register_device(
        self,
        serial: str,
        kind: DeviceKind,
        tin: str | None,
        bhf_id: str | None,
        taxpayer_name: str | None,
    ) -> Device:
        """Approve a serial (optionally for one taxpayer and branch); idempotent until used."""
        device = self.devices.get(serial)
        if device is None or not device.initialized:
            device = Device(serial, kind, tin, bhf_id, taxpayer_name)
            self.devices[serial] = device
        return device

    def initialize(self, device: Device, tin: str, bhf_id: str, now: datetime) -> None:
        """Bind ``device`` to the taxpayer's branch and issue its key and numbers."""
        secret = self.settings.key_secret
        device.tin, device.bhf_id = tin, bhf_id
        device.cmc_key = communication_key(secret, tin, bhf_id, device.serial)
        device.numbers = device_numbers(secret, tin, bhf_id, device.serial)
        device.initialized_at = now
        self._by_key[device.cmc_key] = device
        if device.kind is DeviceKind.VSCU:
            self._vscu_by_branch[(tin, bhf_id)] = device
        self.branch(tin, bhf_id, now)

    def branch_vscu(self, tin: str, bhf_id: str) -> Device | None:
        """The VSCU installed at a branch, if any."""
        return self._vscu_by_branch.get((tin, bhf_id))

    def oscu_for_key(self, tin: str, bhf_id: str, cmc_key: str, now: datetime) -> Device | None:
        """The initialised OSCU device of (tin, bhfId) holding ``cmc_key``.

        A key issued before a restart is recognised again when it is the derived key of an
        approved serial: the client keeps working, with fresh counters.
        """
        device = self._by_key.get(cmc_key)
        if device is None:
            device = self._restore(tin, bhf_id, cmc_key, now)
        if device is None or device.kind is not DeviceKind.OSCU:
            return None
        if (device.tin, device.bhf_id) != (tin, bhf_id):
            return None
        return device

    def _restore(self, tin: str, bhf_id: str, cmc_key: str, now: datetime) -> Device | None:
        secret = self.settings.key_secret
        for device in self.devices.values():
            if device.initialized or device.tin not in (None, tin):
                continue
            if device.bhf_id not in (None, bhf_id):
                continue
            if communication_key(secret, tin, bhf_id, device.serial) == cmc_key:
                self.initialize(device, tin, bhf_id, now)
                return device
        return None

    def branch(self, tin: str, bhf_id: str, now: datetime) -> Branch:
        """The branch's data, created on first use."""
        branch = self.branches.get((tin, bhf_id))
        if branch is None:
            branch = Branch(tin, bhf_id, now)
            self.branches[(tin, bhf_id)] = branch
        return branch

    def taxpayer_name(self, tin: str) -> str:
        """The name KRA has for a PIN (registered name, else a sandbox name)."""
        for device in self.devices.values():
            if device.tin == tin and device.taxpayer_name:
                return device.taxpayer_name
        return f"SANDBOX TAXPAYER {tin}"

    def endpoint_stats(self, name: str) -> EndpointStats:
        """The counters of one operation."""
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = EndpointStats()
        return stats
