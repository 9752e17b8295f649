"""Purchases: ``insertTrnsPurchase`` and ``selectTrnsPurchaseSalesList``.

``insertTrnsPurchase`` records a purchase the branch made, checked like a sale (codes, lengths
and the same arithmetic) and unique by ``invcNo`` per branch (994 on a repeat).

``selectTrnsPurchaseSalesList`` is the other side: the sales other eTIMS taxpayers declared
with the caller's PIN as ``custTin``, accepted since ``lastReqDt``, as ``saleList`` with the
supplier's PIN, name, branch and invoice number. A sale made in the sandbox to a PIN appears
in that PIN's list, so both sides of a trade can be tested. As in KRA's reply, ``cfmDt`` and
``stockRlsDt`` there are written ``yyyy-MM-dd HH:mm:ss``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sandboxes.etims.arithmetic import Line, check_header_by_type, check_line, read_line
from sandboxes.etims.codes import (
    PACKAGING_UNIT,
    PAYMENT_TYPE,
    PURCHASE_RECEIPT_TYPE,
    QUANTITY_UNIT,
    REGISTRATION_TYPES,
    SALE_STATUS,
    TAX_TYPE,
    TRANSACTION_TYPE,
)
from sandboxes.etims.context import Call
from sandboxes.etims.envelope import KRA_DATETIME, NAIROBI, Reply, ResultCode
from sandboxes.etims.fields import Fields
from sandboxes.etims.items import item_class
from sandboxes.etims.sales import check_sequence
from sandboxes.etims.state import Device, Record, StoredSale

_SALE_ITEM = (
    "itemSeq",
    "itemCd",
    "itemClsCd",
    "itemNm",
    "bcd",
    "pkgUnitCd",
    "pkg",
    "qtyUnitCd",
    "qty",
    "prc",
    "splyAmt",
    "dcRt",
    "dcAmt",
    "taxTyCd",
    "taxblAmt",
    "taxAmt",
    "totAmt",
)


def save_purchase(call: Call) -> Reply:
    """Check and store a purchase of the caller's branch."""
    body, catalog = call.body, call.state.catalog
    branch = call.branch
    invc_no = body.required_integer("invcNo", minimum=1)
    if invc_no in branch.purchases:
        return Reply(
            ResultCode.DUPLICATE,
            message=f"There is an overlapped Data: purchase invcNo {invc_no} was saved before",
        )
    body.required_integer("orgInvcNo", minimum=0)
    body.pin("spplrTin", required=False)
    body.branch("spplrBhfId", required=False)
    body.text("spplrNm", 60, required=False)
    body.integer("spplrInvcNo", required=False)
    body.one_of("regTyCd", REGISTRATION_TYPES)
    body.required_code("pchsTyCd", catalog, TRANSACTION_TYPE)
    body.required_code("rcptTyCd", catalog, PURCHASE_RECEIPT_TYPE)
    body.required_code("pmtTyCd", catalog, PAYMENT_TYPE)
    body.required_code("pchsSttsCd", catalog, SALE_STATUS)
    body.timestamp("cfmDt", required=False)
    body.day("pchsDt")
    for optional_time in ("wrhsDt", "cnclReqDt", "cnclDt", "rfdDt"):
        body.timestamp(optional_time, required=False)
    body.text("remark", 400, required=False)
    body.user()
    rows = body.objects("itemList")
    lines = [_purchase_item(call, row, position) for position, row in enumerate(rows)]
    item_count = body.required_integer("totItemCnt", minimum=1, max_digits=10)
    if item_count != len(rows):
        raise body.fail(
            "totItemCnt", f"must be {len(rows)} (entries of itemList), got {item_count}"
        )
    rates = catalog.tax_rates()
    for line in lines:
        check_line(line, rates.get(line.tax_type, Decimal(0)))
    check_header_by_type(body, lines, rates)
    branch.purchases[invc_no] = Record(dict(body.raw), call.now)
    return Reply.ok()


def _purchase_item(call: Call, row: Fields, position: int) -> Line:
    catalog = call.state.catalog
    check_sequence(row, position)
    row.text("itemCd", 20, required=False)
    item_class(row, call)
    row.required_text("itemNm", 200)
    row.text("bcd", 20, required=False)
    row.text("spplrItemClsCd", 10, required=False)
    row.text("spplrItemCd", 20, required=False)
    row.text("spplrItemNm", 200, required=False)
    row.code("pkgUnitCd", catalog, PACKAGING_UNIT, required=False)
    row.required_number("pkg", 13, 2)
    row.required_code("qtyUnitCd", catalog, QUANTITY_UNIT)
    tax_type = row.required_code("taxTyCd", catalog, TAX_TYPE)
    row.day("itemExprDt", required=False)
    return read_line(row, tax_type)


def select_purchase_sales(call: Call) -> Reply:
    """``saleList``: sales to the caller's PIN accepted since ``lastReqDt``."""
    since = call.last_request()
    sales = call.state.sales_by_buyer.get(call.tin, [])
    rows = [_as_purchase(call, device, sale) for device, sale in sales if sale.accepted_at >= since]
    return Reply.found("saleList", rows)


def _as_purchase(call: Call, supplier: Device, sale: StoredSale) -> dict[str, Any]:
    request = sale.request
    assert supplier.tin is not None
    return {
        "spplrTin": supplier.tin,
        "spplrNm": call.state.taxpayer_name(supplier.tin),
        "spplrBhfId": supplier.bhf_id,
        "spplrInvcNo": request.get("invcNo"),
        "rcptTyCd": request.get("rcptTyCd"),
        "pmtTyCd": request.get("pmtTyCd"),
        "cfmDt": _dashed(request.get("cfmDt")),
        "salesDt": request.get("salesDt"),
        "stockRlsDt": _dashed(request.get("stockRlsDt")),
        "totItemCnt": request.get("totItemCnt"),
        **{key: request.get(key) for key in _tax_keys()},
        "totTaxblAmt": request.get("totTaxblAmt"),
        "totTaxAmt": request.get("totTaxAmt"),
        "totAmt": request.get("totAmt"),
        "remark": request.get("remark"),
        "itemList": [
            {key: row.get(key) for key in _SALE_ITEM} for row in request.get("itemList", [])
        ],
    }


def _tax_keys() -> list[str]:
    return [f"{kind}{t}" for kind in ("taxblAmt", "taxRt", "taxAmt") for t in "ABCDE"]


def _dashed(text: Any) -> str | None:
    if not isinstance(text, str) or len(text) != 14:
        return None
    moment = datetime.strptime(text, KRA_DATETIME).replace(tzinfo=NAIROBI)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
