"""Keys and numbers of sandbox devices, and the receipt's ``intrlData`` and ``rcptSign``.

KRA's control unit encrypts and signs each receipt with the device's communication key; the
algorithm is not public. The sandbox keeps the property that matters to a client, that both
values are a deterministic function of the receipt and the cmcKey, and publishes the function
so tests can check it:

- canonical text: ``|``-joined ``tin``, ``bhfId``, ``sdcId``, ``invcNo``, receipt label
  (``salesTyCd + rcptTyCd``), ``curRcptNo``, ``totRcptNo``, ``taxblAmtA..E``, ``taxAmtA..E``,
  ``totAmt`` (amounts with two decimals) and ``sdcDateTime``;
- ``intrlData`` = first 26 characters of base32(HMAC-SHA256(cmcKey, "intrlData|" + text));
- ``rcptSign`` = first 16 characters of base32(HMAC-SHA256(cmcKey, "rcptSign|" + text)).

Base32 gives KRA's alphabet (A-Z, 2-7) and lengths (26 and 16, e.g. ``QUII27MATATSHFRB``).

Device keys and numbers derive from ``key_secret`` and (tin, bhfId, serial): the same device
gets the same cmcKey (32 hex characters, like KRA's), ``sdcId`` (``KRACU0`` + 8 digits),
``mrcNo`` (``WIS`` + 8 digits) and ``dvcId`` (16 digits) on every run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from decimal import Decimal

from sandboxes.etims.codes import TAX_TYPES

INTERNAL_DATA_LENGTH = 26
SIGNATURE_LENGTH = 16
CENT = Decimal("0.01")


def _digest(key: str, message: str) -> bytes:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()


def _digits(secret: str, purpose: str, device: str, count: int) -> str:
    number = int.from_bytes(_digest(secret, f"{purpose}|{device}"), "big") % 10**count
    return str(number).zfill(count)


def communication_key(secret: str, tin: str, bhf_id: str, serial: str) -> str:
    """The cmcKey the sandbox issues to a device: 32 lowercase hex characters."""
    return _digest(secret, f"cmcKey|{tin}|{bhf_id}|{serial}").hex()[:32]


@dataclass(frozen=True)
class DeviceNumbers:
    """The numbers KRA assigns to an initialised device."""

    dvc_id: str
    sdc_id: str
    mrc_no: str


def device_numbers(secret: str, tin: str, bhf_id: str, serial: str) -> DeviceNumbers:
    """The device id, control-unit id and MRC number of a device."""
    device = f"{tin}|{bhf_id}|{serial}"
    return DeviceNumbers(
        dvc_id=_digits(secret, "dvcId", device, 16),
        sdc_id="KRACU0" + _digits(secret, "sdcId", device, 8),
        mrc_no="WIS" + _digits(secret, "mrcNo", device, 8),
    )


@dataclass(frozen=True)
class ReceiptFacts:
    """What a receipt's internal data and signature cover."""

    tin: str
    bhf_id: str
    sdc_id: str
    invc_no: int
    receipt_label: str  # salesTyCd + rcptTyCd, e.g. "NS" normal sale, "NR" normal credit note
    cur_rcpt_no: int
    tot_rcpt_no: int
    taxable_by_type: dict[str, Decimal]
    tax_by_type: dict[str, Decimal]
    total: Decimal
    sdc_date_time: str

    def canonical(self) -> str:
        """The text that is signed."""
        amounts = [self.taxable_by_type.get(t, Decimal(0)) for t in TAX_TYPES]
        amounts += [self.tax_by_type.get(t, Decimal(0)) for t in TAX_TYPES]
        amounts.append(self.total)
        parts = [
            self.tin,
            self.bhf_id,
            self.sdc_id,
            str(self.invc_no),
            self.receipt_label,
            str(self.cur_rcpt_no),
            str(self.tot_rcpt_no),
            *(format(amount.quantize(CENT), "f") for amount in amounts),
            self.sdc_date_time,
        ]
        return "|".join(parts)


def _base32(digest: bytes) -> str:
    return base64.b32encode(digest).decode().rstrip("=")


def internal_data(cmc_key: str, facts: ReceiptFacts) -> str:
    """``intrlData``: 26 base32 characters."""
    return _base32(_digest(cmc_key, "intrlData|" + facts.canonical()))[:INTERNAL_DATA_LENGTH]


def receipt_signature(cmc_key: str, facts: ReceiptFacts) -> str:
    """``rcptSign``: 16 base32 characters."""
    return _base32(_digest(cmc_key, "rcptSign|" + facts.canonical()))[:SIGNATURE_LENGTH]
