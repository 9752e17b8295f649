"""Stock: ``insertStockIO``, ``saveStockMaster`` and ``selectStockMoveList``.

``insertStockIO`` records a movement in or out (``sarTyCd`` 01-06 in, 11-16 out), unique by
``sarNo`` per branch (994 on a repeat), with the sale arithmetic on its lines (the discount is
``totDcAmt``) and ``totTaxblAmt``/``totTaxAmt``/``totAmt`` as the sums of its lines. Lines
naming an ``itemCd`` must name a saved item and move the sandbox's count of it.

``saveStockMaster`` reports an item's remaining quantity. The spec's order is "stock IO before
stock master", and the sandbox holds clients to it: an item without any movement yet answers
910 on ``itemCd``.

``selectStockMoveList`` answers the branch's movements since ``lastReqDt``: its own, and those
another branch addressed to it (``custTin``/``custBhfId``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandboxes.etims.arithmetic import ZERO, check_line, check_totals, read_line
from sandboxes.etims.codes import (
    PACKAGING_UNIT,
    QUANTITY_UNIT,
    REGISTRATION_TYPES,
    STOCK_IN_TYPES,
    STOCK_IO_TYPE,
    TAX_TYPE,
)
from sandboxes.etims.context import Call
from sandboxes.etims.envelope import Reply, ResultCode
from sandboxes.etims.items import item_class, registered_item
from sandboxes.etims.sales import check_sequence
from sandboxes.etims.state import Branch, Record

_MOVE_FIELDS = (
    "custTin",
    "custBhfId",
    "sarNo",
    "ocrnDt",
    "totItemCnt",
    "totTaxblAmt",
    "totTaxAmt",
    "totAmt",
    "remark",
)


def save_stock_io(call: Call) -> Reply:
    """Check and store a stock movement; count its items in or out."""
    body, catalog = call.body, call.state.catalog
    branch = call.branch
    sar_no = body.required_integer("sarNo", minimum=1)
    if sar_no in branch.stock_moves:
        return Reply(
            ResultCode.DUPLICATE,
            message=f"There is an overlapped Data: sarNo {sar_no} was saved before",
        )
    body.required_integer("orgSarNo", minimum=0)
    body.one_of("regTyCd", REGISTRATION_TYPES)
    body.pin("custTin", required=False)
    body.text("custNm", 100, required=False)
    body.branch("custBhfId", required=False)
    movement = body.required_code("sarTyCd", catalog, STOCK_IO_TYPE)
    body.day("ocrnDt")
    body.text("remark", 400, required=False)
    body.user()
    rows = body.objects("itemList")
    lines = []
    moved: list[tuple[str, Decimal]] = []
    for position, row in enumerate(rows):
        check_sequence(row, position)
        item = registered_item(row, branch, required=False)
        item_class(row, call)
        row.required_text("itemNm", 200)
        row.text("bcd", 20, required=False)
        row.required_code("pkgUnitCd", catalog, PACKAGING_UNIT)
        row.required_number("pkg", 13, 2)
        row.required_code("qtyUnitCd", catalog, QUANTITY_UNIT)
        row.day("itemExprDt", required=False)
        tax_type = row.required_code("taxTyCd", catalog, TAX_TYPE)
        line = read_line(row, tax_type, discount_rate_field=False)
        lines.append(line)
        if item is not None:
            moved.append((str(item.fields["itemCd"]), line.quantity))
    item_count = body.required_integer("totItemCnt", minimum=1, max_digits=10)
    if item_count != len(rows):
        raise body.fail(
            "totItemCnt", f"must be {len(rows)} (entries of itemList), got {item_count}"
        )
    rates = catalog.tax_rates()
    for line in lines:
        check_line(line, rates.get(line.tax_type, ZERO))
    check_totals(
        body,
        lines,
        sum((line.taxable for line in lines), ZERO),
        sum((line.tax for line in lines), ZERO),
        by_type=False,
    )
    _move(branch, moved, incoming=movement in STOCK_IN_TYPES)
    branch.stock_moves[sar_no] = Record(dict(body.raw), call.now)
    return Reply.ok()


def _move(branch: Branch, moved: list[tuple[str, Decimal]], *, incoming: bool) -> None:
    for item_cd, quantity in moved:
        change = quantity if incoming else -quantity
        branch.stock_levels[item_cd] = branch.stock_levels.get(item_cd, ZERO) + change


def save_stock_master(call: Call) -> Reply:
    """Record an item's remaining quantity, after at least one movement of it."""
    body = call.body
    branch = call.branch
    item = registered_item(body, branch)
    assert item is not None
    item_cd = str(item.fields["itemCd"])
    body.required_number("rsdQty", 13, 2)
    body.user()
    if not _has_moved(branch, item_cd):
        raise body.fail(
            "itemCd",
            f"{item_cd!r} has no stock movement yet (insertStockIO before saveStockMaster)",
        )
    branch.stock_master[item_cd] = Record(dict(body.raw), call.now)
    return Reply.ok()


def _has_moved(branch: Branch, item_cd: str) -> bool:
    return item_cd in branch.stock_levels


def select_stock_moves(call: Call) -> Reply:
    """``stockList``: movements of (or addressed to) the branch since ``lastReqDt``."""
    since = call.last_request()
    rows: list[dict[str, Any]] = []
    for (tin, bhf_id), branch in call.state.branches.items():
        own = (tin, bhf_id) == (call.tin, call.bhf_id)
        for record in branch.stock_moves.values():
            fields = record.fields
            addressed = (fields.get("custTin"), fields.get("custBhfId")) == (call.tin, call.bhf_id)
            if (own or addressed) and record.modified >= since:
                rows.append(_move_row(fields))
    return Reply.found("stockList", rows)


def _move_row(fields: dict[str, Any]) -> dict[str, Any]:
    row = {key: fields.get(key) for key in _MOVE_FIELDS}
    row["itemList"] = fields.get("itemList", [])
    return row
