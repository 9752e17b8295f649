"""Lists KRA keeps: code lists, item classes, notices, taxpayers and branches.

List calls take ``lastReqDt`` and return what changed at or after it; when nothing did they
answer ``001`` ("There is no search result") with ``data: null``, which a client treats as an
empty result, not an error.
"""

from __future__ import annotations

from typing import Any

from sandboxes.etims.codes import CATALOG_PUBLISHED_AT
from sandboxes.etims.context import Call
from sandboxes.etims.envelope import Reply, kra_date, kra_datetime

_WELCOME_NOTICE: dict[str, Any] = {
    "noticeNo": 1,
    "title": "Kassa eTIMS sandbox",
    "cont": "This is a local simulator of KRA eTIMS. Nothing sent here reaches KRA.",
    "dtlUrl": "https://etims-sbx.kra.go.ke",
    "regrNm": "Administrator",
    "regDt": kra_datetime(CATALOG_PUBLISHED_AT),
}


def select_code_list(call: Call) -> Reply:
    """``clsList`` of the code classes changed since ``lastReqDt``."""
    since = call.last_request()
    return Reply.found("clsList", call.state.catalog.classes_changed_since(since))


def select_item_classes(call: Call) -> Reply:
    """``itemClsList`` of the item classes changed since ``lastReqDt``."""
    since = call.last_request()
    return Reply.found("itemClsList", call.state.catalog.item_classes_changed_since(since))


def select_notices(call: Call) -> Reply:
    """``noticeList``: the sandbox's one notice, to those who have not seen it."""
    since = call.last_request()
    notices = [_WELCOME_NOTICE] if since <= CATALOG_PUBLISHED_AT else []
    return Reply.found("noticeList", notices)


def select_customer(call: Call) -> Reply:
    """``custList``: the taxpayer with PIN ``custmTin``, if KRA knows it."""
    tin = call.body.pin("custmTin")
    state = call.state
    known = any(device.tin == tin for device in state.devices.values()) or any(
        branch_tin == tin for branch_tin, _ in state.branches
    )
    if not known or tin is None:
        return Reply.found("custList", [])
    customer = {
        "tin": tin,
        "taxprNm": state.taxpayer_name(tin),
        "taxprSttsCd": "A",
        "prvncNm": "NAIROBI CITY",
        "dstrtNm": "WESTLANDS",
        "sctrNm": "WESTLANDS",
        "locDesc": "Kassa eTIMS sandbox",
    }
    return Reply.found("custList", [customer])


def select_branches(call: Call) -> Reply:
    """``bhfList``: the caller's branches KRA knows, opened since ``lastReqDt``."""
    since = call.last_request()
    rows = [
        _branch_row(call, bhf_id, kra_date(branch.opened_at.date()))
        for (tin, bhf_id), branch in sorted(call.state.branches.items())
        if tin == call.tin and branch.opened_at >= since
    ]
    return Reply.found("bhfList", rows)


def _branch_row(call: Call, bhf_id: str, opened: str) -> dict[str, Any]:
    head_office = bhf_id == "00"
    return {
        "tin": call.tin,
        "bhfId": bhf_id,
        "bhfNm": "Headquarter" if head_office else f"Branch {bhf_id}",
        "bhfSttsCd": "01",
        "bhfOpenDt": opened,
        "prvncNm": "NAIROBI CITY",
        "dstrtNm": "WESTLANDS",
        "sctrNm": "WESTLANDS",
        "locDesc": "Kassa eTIMS sandbox",
        "mgrNm": "Sandbox Manager",
        "mgrTelNo": "0700000000",
        "mgrEmail": "manager@sandbox.invalid",
        "hqYn": "Y" if head_office else "N",
    }
