"""KRA's reply envelope: result codes and messages, Nairobi timestamps, and exact JSON.

Every eTIMS reply is HTTP 200 with ``{resultCd, resultMsg, resultDt, data}``, errors included.
The messages are KRA's own wording (its code table), so a client that shows them to operators
shows what production would. A 910 names the offending field first (``"itemList[0].taxAmt:
must be 16.00 ..."``), which is what KRA's terse "Request parameter error" never does and what
a developer needs.

Amounts leave the sandbox as JSON numbers written from their ``Decimal`` digits, never through
a float, so ``116.00`` stays ``116.00`` on the wire.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from json.encoder import encode_basestring  # the C-accelerated string escaper
from typing import Any

# Kenya has kept UTC+3 without daylight saving since 1960: a fixed offset needs no tzdata.
NAIROBI = timezone(timedelta(hours=3), "EAT")
KRA_DATETIME = "%Y%m%d%H%M%S"
KRA_DATE = "%Y%m%d"


class ResultCode(enum.StrEnum):
    """The ``resultCd`` values the sandbox answers with."""

    OK = "000"
    NO_RESULT = "001"
    COMMUNICATION_ERROR = "894"
    NO_HEADER = "900"
    INVALID_DEVICE = "901"
    DEVICE_INSTALLED = "902"
    ONLY_OSCU = "903"
    PARAMETER_ERROR = "910"
    NO_BODY = "911"
    METHOD_ERROR = "912"
    TOO_MANY_REQUESTS = "990"
    DUPLICATE = "994"
    UNKNOWN_ERROR = "999"


MESSAGES: dict[ResultCode, str] = {
    ResultCode.OK: "It is succeeded",
    ResultCode.NO_RESULT: "There is no search result",
    ResultCode.COMMUNICATION_ERROR: "An error regarding server communication occurred.",
    ResultCode.NO_HEADER: "There is no Header information",
    ResultCode.INVALID_DEVICE: "It is not valid device",
    ResultCode.DEVICE_INSTALLED: "This device is installed",
    ResultCode.ONLY_OSCU: "Only OSCU device can be verified.",
    ResultCode.PARAMETER_ERROR: "Request parameter error",
    ResultCode.NO_BODY: "There is no request full text",
    ResultCode.METHOD_ERROR: "There is a request Method error",
    ResultCode.TOO_MANY_REQUESTS: "The maximum number of views are exceeded",
    ResultCode.DUPLICATE: "There is an overlapped Data",
    ResultCode.UNKNOWN_ERROR: "There is an unknown error. Please ask the administrator",
}


@dataclass(frozen=True)
class Reply:
    """What an operation answers: a result code, its ``data``, and an optional message."""

    code: ResultCode
    data: Any = None
    message: str | None = None  # replaces KRA's standard text (910 names the field here)

    @classmethod
    def ok(cls, data: Any = None) -> Reply:
        """``000`` with ``data``."""
        return cls(ResultCode.OK, data)

    @classmethod
    def found(cls, key: str, rows: list[Any]) -> Reply:
        """``000`` with ``{key: rows}``, or ``001`` with no data when there are no rows."""
        return cls(ResultCode.OK, {key: rows}) if rows else cls(ResultCode.NO_RESULT)


def nairobi_now() -> datetime:
    """The current time in Nairobi, truncated to KRA's one-second resolution."""
    return datetime.now(UTC).astimezone(NAIROBI).replace(microsecond=0)


def kra_datetime(moment: datetime) -> str:
    """``yyyyMMddHHmmss`` in Nairobi time."""
    return moment.astimezone(NAIROBI).strftime(KRA_DATETIME)


def kra_date(day: date) -> str:
    """``yyyyMMdd``."""
    return day.strftime(KRA_DATE)


def parse_kra_datetime(text: str) -> datetime:
    """A ``yyyyMMddHHmmss`` text as an aware Nairobi time; ``ValueError`` if it is not one."""
    if len(text) != 14 or not text.isdigit():
        raise ValueError("must be 14 digits, yyyyMMddHHmmss")
    return datetime.strptime(text, KRA_DATETIME).replace(tzinfo=NAIROBI)


def parse_kra_date(text: str) -> date:
    """A ``yyyyMMdd`` text as a date; ``ValueError`` if it is not one."""
    if len(text) != 8 or not text.isdigit():
        raise ValueError("must be 8 digits, yyyyMMdd")
    return datetime.strptime(text, KRA_DATE).date()


def envelope(reply: Reply, moment: datetime) -> dict[str, Any]:
    """The JSON object KRA answers with."""
    return {
        "resultCd": reply.code.value,
        "resultMsg": reply.message or MESSAGES[reply.code],
        "resultDt": kra_datetime(moment),
        "data": reply.data,
    }


def render_json(value: Any) -> bytes:
    """Compact JSON in which a ``Decimal`` is written as the number it holds (not a string)."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts).encode()


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(encode_basestring(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no JSON form")
        out.append(format(value, "f"))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(encode_basestring(str(key)))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not part of the eTIMS JSON vocabulary")
