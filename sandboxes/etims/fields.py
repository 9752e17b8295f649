"""Reading a request body as KRA types it: CHAR(n), NUMBER(p,s), codes, Y/N flags and dates.

Bodies are parsed with ``parse_float=Decimal``, so amounts arrive exact; a JSON string where
KRA expects a NUMBER is refused, as is a fraction where it expects an integer (``invcNo`` is
an integer, never ``"INV-7"``). An empty string counts as absent, as KRA's Java server treats
it. The first problem found raises :class:`ParameterError` naming the field by its path
(``itemList[2].qtyUnitCd``, ``receipt.rcptPbctDt``); the operation answers 910 with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sandboxes.etims.codes import CodeCatalog
from sandboxes.etims.envelope import parse_kra_date, parse_kra_datetime

# A KRA PIN: a letter (P for companies, A for individuals), nine digits, a check letter.
PIN_PATTERN = re.compile(r"[A-Z]\d{9}[A-Z]")
BRANCH_PATTERN = re.compile(r"\d{2}")
ZERO = Decimal(0)


class ParameterError(Exception):
    """A request field KRA would refuse (910)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    @property
    def message(self) -> str:
        """``resultMsg``: the field path first, then what is wrong."""
        return f"{self.field}: {self.reason}"


class Fields:
    """One JSON object of a request, read field by field; ``path`` prefixes field names."""

    def __init__(self, raw: Mapping[str, Any], path: str = "") -> None:
        self.raw = raw
        self.path = path

    def name(self, key: str) -> str:
        """The full path of ``key`` for messages."""
        return f"{self.path}{key}"

    def fail(self, key: str, reason: str) -> ParameterError:
        """The error for ``key`` (raise it)."""
        return ParameterError(self.name(key), reason)

    def _value(self, key: str, required: bool) -> Any:
        value = self.raw.get(key)
        if value is None or value == "":
            if required:
                raise self.fail(key, "is required")
            return None
        return value

    def text(
        self,
        key: str,
        max_length: int,
        *,
        required: bool = True,
        pattern: re.Pattern[str] | None = None,
        expected: str = "",
    ) -> str | None:
        """A CHAR field of at most ``max_length`` characters (matching ``pattern`` if given)."""
        value = self._value(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {_json_type(value)}")
        if len(value) > max_length:
            raise self.fail(key, f"must be at most {max_length} characters, got {len(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"must be {expected or pattern.pattern}, got {value!r}")
        return value

    def required_text(self, key: str, max_length: int, **options: Any) -> str:
        """A CHAR field that must be present."""
        value = self.text(key, max_length, required=True, **options)
        assert value is not None
        return value

    def pin(self, key: str, *, required: bool = True) -> str | None:
        """A KRA PIN (11 characters: letter, 9 digits, letter)."""
        return self.text(
            key, 11, required=required, pattern=PIN_PATTERN, expected="a KRA PIN like P051234567X"
        )

    def branch(self, key: str, *, required: bool = True) -> str | None:
        """A branch id (two digits, ``00`` for the head office)."""
        return self.text(key, 2, required=required, pattern=BRANCH_PATTERN, expected="2 digits")

    def integer(
        self, key: str, *, required: bool = True, minimum: int = 0, max_digits: int = 38
    ) -> int | None:
        """A NUMBER without decimals (JSON integer)."""
        value = self._value(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {_json_type(value)} {value!r}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        if len(str(abs(value))) > max_digits:
            raise self.fail(key, f"must have at most {max_digits} digits")
        return value

    def required_integer(self, key: str, **options: Any) -> int:
        """An integer that must be present."""
        value = self.integer(key, required=True, **options)
        assert value is not None
        return value

    def number(
        self,
        key: str,
        precision: int = 18,
        scale: int = 2,
        *,
        required: bool = True,
        minimum: Decimal | None = ZERO,
        maximum: Decimal | None = None,
    ) -> Decimal | None:
        """A NUMBER(precision, scale): a JSON number with at most ``scale`` decimals."""
        value = self._value(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise self.fail(key, f"must be a number, got {_json_type(value)} {value!r}")
        amount = Decimal(value)
        # Magnitude first: quantizing a huge number would overflow the decimal context.
        if abs(amount) >= Decimal(10) ** (precision - scale):
            raise self.fail(key, f"must have at most {precision - scale} integer digits")
        if amount != amount.quantize(Decimal(1).scaleb(-scale)):
            raise self.fail(key, f"must have at most {scale} decimal places, got {amount}")
        if minimum is not None and amount < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {amount}")
        if maximum is not None and amount > maximum:
            raise self.fail(key, f"must be at most {maximum}, got {amount}")
        return amount

    def required_number(
        self, key: str, precision: int = 18, scale: int = 2, **options: Any
    ) -> Decimal:
        """A NUMBER that must be present."""
        value = self.number(key, precision, scale, required=True, **options)
        assert value is not None
        return value

    def code(
        self, key: str, catalog: CodeCatalog, cd_cls: str, *, required: bool = True
    ) -> str | None:
        """A code of class ``cd_cls`` from the code list."""
        value = self.text(key, 5, required=required)
        if value is not None and not catalog.is_code(cd_cls, value):
            known = ", ".join(catalog.codes(cd_cls)[:12])
            raise self.fail(
                key, f"{value!r} is not a code of class {catalog.class_name(cd_cls)}: {known}"
            )
        return value

    def required_code(self, key: str, catalog: CodeCatalog, cd_cls: str) -> str:
        """A code that must be present."""
        value = self.code(key, catalog, cd_cls, required=True)
        assert value is not None
        return value

    def one_of(self, key: str, allowed: frozenset[str], *, required: bool = True) -> str | None:
        """A short code from a fixed set."""
        value = self.text(key, 5, required=required)
        if value is not None and value not in allowed:
            raise self.fail(key, f"must be one of {', '.join(sorted(allowed))}, got {value!r}")
        return value

    def flag(self, key: str, *, required: bool = True) -> str | None:
        """A ``Y``/``N`` field."""
        return self.one_of(key, frozenset({"Y", "N"}), required=required)

    def timestamp(self, key: str, *, required: bool = True) -> datetime | None:
        """A ``yyyyMMddHHmmss`` field (Nairobi time)."""
        value = self.text(key, 14, required=required)
        if value is None:
            return None
        try:
            return parse_kra_datetime(value)
        except ValueError as exc:
            raise self.fail(key, f"{exc}, got {value!r}") from exc

    def required_timestamp(self, key: str) -> datetime:
        """A ``yyyyMMddHHmmss`` field that must be present."""
        value = self.timestamp(key, required=True)
        assert value is not None
        return value

    def day(self, key: str, *, required: bool = True) -> date | None:
        """A ``yyyyMMdd`` field."""
        value = self.text(key, 8, required=required)
        if value is None:
            return None
        try:
            return parse_kra_date(value)
        except ValueError as exc:
            raise self.fail(key, f"{exc}, got {value!r}") from exc

    def user(self) -> None:
        """The registrant and modifier fields every save carries."""
        self.text("regrId", 20)
        self.text("regrNm", 60)
        self.text("modrId", 20, required=False)
        self.text("modrNm", 60, required=False)

    def obj(self, key: str, *, required: bool = True) -> Fields | None:
        """A nested object."""
        value = self._value(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, f"must be an object, got {_json_type(value)}")
        return Fields(value, f"{self.name(key)}.")

    def objects(self, key: str, *, max_items: int = 1_000) -> list[Fields]:
        """A non-empty list of objects (``itemList``)."""
        value = self._value(key, True)
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list, got {_json_type(value)}")
        if not value:
            raise self.fail(key, "must not be empty")
        if len(value) > max_items:
            raise self.fail(key, f"must have at most {max_items} entries, got {len(value)}")
        rows: list[Fields] = []
        for index, row in enumerate(value):
            if not isinstance(row, dict):
                raise ParameterError(f"{self.name(key)}[{index}]", "must be an object")
            rows.append(Fields(row, f"{self.name(key)}[{index}]."))
        return rows


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | Decimal):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
