"""Sales: ``saveTrnsSalesOsdc`` (VSCU ``/trnsSales/saveSales``) and ``selectInvoiceDetails``.

A sale is checked field by field (codes, types, lengths, dates) and to the cent (see
:mod:`sandboxes.etims.arithmetic`); the first problem answers 910 naming the field. A number
the device has used before answers 994 whatever the body says: ``invcNo`` is never reused. An
accepted sale counts one more receipt of its label (``salesTyCd + rcptTyCd``: ``NS`` normal
sale, ``NR`` normal credit note, ``TS`` training, ...) for ``curRcptNo`` and one more overall
for ``totRcptNo``, and is signed (:mod:`sandboxes.etims.signing`).

A credit note (``rcptTyCd`` R) names the sale it reverses in ``orgInvcNo`` (a sale this device
accepted) and a reason in ``rfdRsnCd``. Like KRA, the sandbox does not cap credited quantities
or amounts: the client must.

``selectInvoiceDetails`` with ``{invcNo}`` answers the stored sale as it was received, plus its
receipt (``curRcptNo``, ``totRcptNo``, ``intrlData``, ``rcptSign``, ``sdcDateTime``) and the
device's ``sdcId`` and ``mrcNo``, or 001 if this device never accepted that number. It is how a
client settles a submission whose reply it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sandboxes.etims.arithmetic import Line, Totals, check_header_by_type, check_line, read_line
from sandboxes.etims.codes import (
    CREDIT_NOTE_REASON,
    PACKAGING_UNIT,
    PAYMENT_TYPE,
    QUANTITY_UNIT,
    SALE_STATUS,
    SALES_RECEIPT_TYPE,
    TAX_TYPE,
    TRANSACTION_TYPE,
)
from sandboxes.etims.context import Call
from sandboxes.etims.envelope import Reply, ResultCode, kra_datetime
from sandboxes.etims.fields import Fields
from sandboxes.etims.items import item_class, registered_item
from sandboxes.etims.signing import ReceiptFacts, internal_data, receipt_signature
from sandboxes.etims.state import Device, StoredSale

CREDIT_NOTE = "R"


@dataclass(frozen=True)
class Sale:
    """What the sandbox needs of a checked sale."""

    invc_no: int
    sales_type: str
    receipt_type: str
    buyer_tin: str | None
    totals: Totals


def save_sale(call: Call) -> Reply:
    """Check, number, count, sign and store a sale or credit note."""
    device = call.caller
    invc_no = call.body.required_integer("invcNo", minimum=1)
    if invc_no in device.sales:
        return Reply(
            ResultCode.DUPLICATE,
            message=f"There is an overlapped Data: invcNo {invc_no} was accepted before",
        )
    sale = read_sale(call, invc_no)
    receipt = _sign(call, device, sale)
    request = {"tin": call.tin, "bhfId": call.bhf_id, **call.body.raw}
    stored = StoredSale(request, receipt, call.now)
    device.sales[invc_no] = stored
    if sale.buyer_tin:
        call.state.sales_by_buyer.setdefault(sale.buyer_tin, []).append((device, stored))
    return Reply.ok(receipt)


def read_sale(call: Call, invc_no: int) -> Sale:
    """Check every field of a sale; raise :class:`ParameterError` on the first bad one."""
    body, catalog = call.body, call.state.catalog
    receipt_type = body.required_code("rcptTyCd", catalog, SALES_RECEIPT_TYPE)
    _check_original(call, receipt_type)
    body.required_text("trdInvcNo", 50)
    buyer_tin = body.pin("custTin", required=False)
    body.text("custNm", 60, required=False)
    sales_type = body.required_code("salesTyCd", catalog, TRANSACTION_TYPE)
    body.code("pmtTyCd", catalog, PAYMENT_TYPE, required=False)
    body.required_code("salesSttsCd", catalog, SALE_STATUS)
    body.required_timestamp("cfmDt")
    body.day("salesDt")
    for optional_time in ("stockRlsDt", "cnclReqDt", "cnclDt", "rfdDt"):
        body.timestamp(optional_time, required=False)
    body.code("rfdRsnCd", catalog, CREDIT_NOTE_REASON, required=receipt_type == CREDIT_NOTE)
    body.flag("prchrAcptcYn")
    body.text("remark", 400, required=False)
    body.user()
    _check_receipt_block(body)
    rows = body.objects("itemList")
    lines = [read_sale_item(call, row, position) for position, row in enumerate(rows)]
    item_count = body.required_integer("totItemCnt", minimum=1, max_digits=10)
    if item_count != len(rows):
        raise body.fail(
            "totItemCnt", f"must be {len(rows)} (entries of itemList), got {item_count}"
        )
    rates = catalog.tax_rates()
    for line in lines:
        check_line(line, rates.get(line.tax_type, Decimal(0)))
    totals = check_header_by_type(body, lines, rates)
    return Sale(invc_no, sales_type, receipt_type, buyer_tin, totals)


def _check_original(call: Call, receipt_type: str) -> None:
    body = call.body
    original = body.required_integer("orgInvcNo", minimum=0)
    if receipt_type != CREDIT_NOTE:
        if original != 0:
            raise body.fail("orgInvcNo", f"must be 0 for a sale (rcptTyCd S), got {original}")
        return
    reversed_sale = call.caller.sales.get(original)
    if reversed_sale is None or reversed_sale.request.get("rcptTyCd") == CREDIT_NOTE:
        raise body.fail(
            "orgInvcNo",
            f"must be the invcNo of a sale this device accepted (credit note), got {original}",
        )


def _check_receipt_block(body: Fields) -> None:
    receipt = body.obj("receipt")
    assert receipt is not None
    receipt.pin("custTin", required=False)
    receipt.text("custMblNo", 20, required=False)
    receipt.required_timestamp("rcptPbctDt")
    receipt.text("trdeNm", 20, required=False)
    receipt.text("adrs", 200, required=False)
    receipt.text("topMsg", 20, required=False)
    receipt.text("btmMsg", 20, required=False)
    receipt.flag("prchrAcptcYn")


def read_sale_item(call: Call, row: Fields, position: int) -> Line:
    """One ``itemList`` entry of a sale: a registered item, valid codes, its amounts."""
    catalog = call.state.catalog
    check_sequence(row, position)
    item = registered_item(row, call.branch)
    item_class(row, call)
    row.required_text("itemNm", 200)
    row.text("bcd", 20, required=False)
    row.required_code("pkgUnitCd", catalog, PACKAGING_UNIT)
    row.required_number("pkg", 13, 2)
    row.required_code("qtyUnitCd", catalog, QUANTITY_UNIT)
    tax_type = row.required_code("taxTyCd", catalog, TAX_TYPE)
    assert item is not None
    registered_type = item.fields.get("taxTyCd")
    if tax_type != registered_type:
        raise row.fail(
            "taxTyCd",
            f"must be {registered_type}, the tax type item {item.fields.get('itemCd')} was "
            f"saved with, got {tax_type}",
        )
    row.text("isrccCd", 10, required=False)
    row.text("isrccNm", 100, required=False)
    row.number("isrcRt", 5, 2, required=False)
    row.number("isrcAmt", required=False)
    return read_line(row, tax_type)


def check_sequence(row: Fields, position: int) -> None:
    """``itemSeq`` numbers the entries 1, 2, 3 ... in order."""
    sequence = row.required_integer("itemSeq", minimum=1, max_digits=10)
    if sequence != position + 1:
        raise row.fail(
            "itemSeq", f"must be {position + 1} (entries numbered from 1), got {sequence}"
        )


def _sign(call: Call, device: Device, sale: Sale) -> dict[str, Any]:
    assert device.cmc_key is not None
    assert device.numbers is not None
    label = sale.sales_type + sale.receipt_type
    current, total = device.next_receipt_numbers(label)
    facts = ReceiptFacts(
        tin=call.tin,
        bhf_id=call.bhf_id,
        sdc_id=device.numbers.sdc_id,
        invc_no=sale.invc_no,
        receipt_label=label,
        cur_rcpt_no=current,
        tot_rcpt_no=total,
        taxable_by_type=sale.totals.taxable_by_type,
        tax_by_type=sale.totals.tax_by_type,
        total=sale.totals.total,
        sdc_date_time=kra_datetime(call.now),
    )
    as_text = call.state.settings.receipt_numbers_as_text
    return {
        "curRcptNo": str(current) if as_text else current,
        "totRcptNo": str(total) if as_text else total,
        "intrlData": internal_data(device.cmc_key, facts),
        "rcptSign": receipt_signature(device.cmc_key, facts),
        "sdcDateTime": facts.sdc_date_time,
    }


def select_invoice_details(call: Call) -> Reply:
    """The sale this device accepted under ``invcNo``, with its receipt; 001 if none."""
    invc_no = call.body.required_integer("invcNo", minimum=1)
    stored = call.caller.sales.get(invc_no)
    if stored is None:
        return Reply(ResultCode.NO_RESULT)
    numbers = call.caller.numbers
    assert numbers is not None
    return Reply.ok(
        {
            **stored.request,
            **stored.receipt,
            "sdcId": numbers.sdc_id,
            "mrcNo": numbers.mrc_no,
        }
    )
