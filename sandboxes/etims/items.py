"""Items: ``saveItem`` (register or change), ``selectItemList``, compositions and imports.

An item code is ``orgnNatCd + itemTyCd + pkgUnitCd + qtyUnitCd`` and a 7-digit sequence, e.g.
``KE2NTBA0000012`` (Kenya, finished product, net, barrel, number 12); ``saveItem`` refuses a
code that does not spell its own fields. A sale may only use items its branch has saved, with
the tax type they were saved with.
"""

from __future__ import annotations

import re
from decimal import Decimal

from sandboxes.etims.codes import COUNTRY, ITEM_TYPE, PACKAGING_UNIT, QUANTITY_UNIT, TAX_TYPE
from sandboxes.etims.context import Call, pick
from sandboxes.etims.envelope import Reply
from sandboxes.etims.fields import Fields, ParameterError
from sandboxes.etims.state import Branch, Record

ITEM_FIELDS = (
    "itemCd",
    "itemClsCd",
    "itemTyCd",
    "itemNm",
    "itemStdNm",
    "orgnNatCd",
    "pkgUnitCd",
    "qtyUnitCd",
    "taxTyCd",
    "btchNo",
    "bcd",
    "dftPrc",
    "grpPrcL1",
    "grpPrcL2",
    "grpPrcL3",
    "grpPrcL4",
    "grpPrcL5",
    "addInfo",
    "sftyQty",
    "isrcAplcbYn",
    "useYn",
)
_SEQUENCE = re.compile(r"\d{7}")


def save_item(call: Call) -> Reply:
    """Register an item for the caller's branch, or change it (same ``itemCd``)."""
    body = call.body
    catalog = call.state.catalog
    item_cd = body.required_text("itemCd", 20)
    item_class(body, call)
    item_type = body.required_code("itemTyCd", catalog, ITEM_TYPE)
    body.text("itemNm", 200)
    body.text("itemStdNm", 200, required=False)
    origin = body.required_code("orgnNatCd", catalog, COUNTRY)
    packaging = body.required_code("pkgUnitCd", catalog, PACKAGING_UNIT)
    quantity = body.required_code("qtyUnitCd", catalog, QUANTITY_UNIT)
    body.required_code("taxTyCd", catalog, TAX_TYPE)
    body.text("btchNo", 10, required=False)
    body.text("bcd", 20, required=False)
    body.required_number("dftPrc")
    for level in range(1, 6):
        body.number(f"grpPrcL{level}", required=False)
    body.text("addInfo", 7, required=False)
    body.number("sftyQty", 13, 2, required=False)
    body.flag("isrcAplcbYn")
    body.flag("useYn")
    body.user()
    prefix = f"{origin}{item_type}{packaging}{quantity}"
    if not (item_cd.startswith(prefix) and _SEQUENCE.fullmatch(item_cd[len(prefix) :])):
        raise body.fail(
            "itemCd",
            f"must be {prefix} and a 7-digit sequence (orgnNatCd + itemTyCd + pkgUnitCd + "
            f"qtyUnitCd + 0000001), got {item_cd!r}",
        )
    call.branch.items[item_cd] = Record(pick(dict(body.raw), ITEM_FIELDS), call.now)
    return Reply.ok()


def item_class(row: Fields, call: Call, *, required: bool = True) -> str | None:
    """``itemClsCd`` of a row, which must be a published item class."""
    value = row.text("itemClsCd", 10, required=required)
    if value is not None and not call.state.catalog.is_item_class(value):
        raise row.fail("itemClsCd", f"{value!r} is not an item class of selectItemClsList")
    return value


def registered_item(row: Fields, branch: Branch, *, required: bool = True) -> Record | None:
    """The branch's saved item named by ``itemCd`` of a row."""
    item_cd = row.text("itemCd", 20, required=required)
    if item_cd is None:
        return None
    item = branch.items.get(item_cd)
    if item is None:
        raise row.fail(
            "itemCd",
            f"{item_cd!r} is not registered for branch {branch.bhf_id} of {branch.tin} "
            "(saveItem first)",
        )
    return item


def select_items(call: Call) -> Reply:
    """``itemList``: the branch's items changed since ``lastReqDt``."""
    since = call.last_request()
    rows = [
        {"tin": call.tin, **item.fields, "regBhfId": call.bhf_id}
        for item in call.branch.items.values()
        if item.modified >= since
    ]
    return Reply.found("itemList", rows)


def save_item_composition(call: Call) -> Reply:
    """Record that one item is made of a quantity of another."""
    body = call.body
    branch = call.branch
    registered_item(body, branch)
    component = body.required_text("cpstItemCd", 20)
    if component not in branch.items:
        raise body.fail("cpstItemCd", f"{component!r} is not registered (saveItem first)")
    body.required_number("cpstQty", 13, 2, minimum=Decimal("0.01"))
    body.text("regrId", 20)
    body.text("regrNm", 60)
    key = (str(body.raw["itemCd"]), component)
    branch.compositions[key] = Record(dict(body.raw), call.now)
    return Reply.ok()


def select_import_items(call: Call) -> Reply:
    """``itemList`` of customs-declared imports: the sandbox has no customs, so never any."""
    call.last_request()
    return Reply.found("itemList", [])


def update_import_item(call: Call) -> Reply:
    """Accept or reject an imported item: there are none to update in the sandbox."""
    task = call.body.required_text("taskCd", 50)
    raise ParameterError("taskCd", f"no imported item with task code {task!r} for this branch")
