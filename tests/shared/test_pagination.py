"""Cursors round-trip, damaged cursors are a 400 naming the parameter, pages split right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.pagination import Cursor, InvalidCursor, optional_cursor, paginate


class TestCursor:
    def test_round_trips_time_and_id(self) -> None:
        cursor = Cursor(at=datetime(2026, 11, 22, 10, 0, 1, 5, tzinfo=UTC), id="pay_01")
        assert Cursor.decode(cursor.encode()) == cursor

    @pytest.mark.parametrize(
        "text", ["%%%", "bm90IGpzb24", "WzEsMl0", "WyIyMDI2LTExLTIyVDEwOjAwIiwiYSJd"]
    )
    def test_damaged_cursor_is_a_400_naming_the_parameter(self, text: str) -> None:
        with pytest.raises(InvalidCursor) as caught:
            Cursor.decode(text)
        assert caught.value.status == 400
        assert caught.value.errors is not None
        assert caught.value.errors[0].field == "query.cursor"

    def test_no_cursor_is_the_first_page(self) -> None:
        assert optional_cursor(None) is None
        assert optional_cursor("") is None


class TestPaginate:
    rows = [(datetime(2026, 1, 1, tzinfo=UTC) - timedelta(seconds=n), f"r{n}") for n in range(5)]

    def test_an_extra_row_means_a_next_page_after_the_last_shown(self) -> None:
        page, cursor = paginate(self.rows[:3], 2, lambda row: row)
        assert page == self.rows[:2]
        assert cursor is not None
        assert Cursor.decode(cursor) == Cursor(at=self.rows[1][0], id="r1")

    def test_no_extra_row_is_the_last_page(self) -> None:
        page, cursor = paginate(self.rows[:2], 2, lambda row: row)
        assert page == self.rows[:2]
        assert cursor is None
