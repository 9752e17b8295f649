"""Keyset pagination shared by every list endpoint: opaque cursors and one page shape.

A cursor names the last row a page showed by its sort key (a time and an id, which breaks ties),
so the next page is ``WHERE (created_at, id) < (:time, :id)``: stable while rows are inserted,
and as fast on page 1,000 as on page 1, unlike ``OFFSET``. Clients treat the cursor as opaque.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, Field

from shared.errors import BadRequest, FieldError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT")


class InvalidCursor(BadRequest):
    slug = "invalid-cursor"
    title = "Invalid cursor"


@dataclass(frozen=True)
class Cursor:
    """The sort key of the last row of a page: its time and its id."""

    at: datetime
    id: str

    def encode(self) -> str:
        raw = orjson.dumps([self.at.isoformat(), self.id])
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse a cursor from ``?cursor=``; a damaged one is a 400 naming the parameter."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at_text, row_id = orjson.loads(raw)
            at = datetime.fromisoformat(at_text)
        except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as exc:
            raise InvalidCursor(
                "The cursor is not one this API issued; pass next_cursor unchanged.",
                errors=[FieldError(field="query.cursor", message="malformed", type="value_error")],
            ) from exc
        if at.tzinfo is None or not isinstance(row_id, str):
            raise InvalidCursor(
                "The cursor is not one this API issued; pass next_cursor unchanged.",
                errors=[FieldError(field="query.cursor", message="malformed", type="value_error")],
            )
        return cls(at=at, id=row_id)


def optional_cursor(text: str | None) -> Cursor | None:
    """The decoded cursor, or None for the first page."""
    return Cursor.decode(text) if text else None


class Page(BaseModel, Generic[ItemT]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[ItemT]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


def paginate(
    rows: Sequence[RowT], limit: int, sort_key: Callable[[RowT], tuple[datetime, str]]
) -> tuple[list[RowT], str | None]:
    """Split ``limit + 1`` fetched rows into a page and the cursor after it.

    Repositories fetch one row more than asked: its presence is how we know a next page exists
    without a second ``COUNT`` query.
    """
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    at, row_id = sort_key(page[-1])
    return page, Cursor(at=at, id=row_id).encode()


LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, 1 to {MAX_PAGE_SIZE}.")
]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="next_cursor of the previous page.")
]
