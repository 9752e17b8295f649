"""The eTIMS sandbox through real HTTP: KRA's envelope, headers, devices, codes, items, sales,
receipts, reconciliation after an ambiguous timeout, purchases, stock, faults and the VSCU paths.

One sandbox runs on a real port for the whole module. Each test works with its own taxpayer and
device (serials with the auto-approved ``SBX-OSCU-``/``SBX-VSCU-`` prefixes), so tests never
see each other's invoice numbers or counters; faults are cleared after every test.
"""

from __future__ import annotations

import itertools
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sandboxes.etims.app import create_app
from sandboxes.etims.cli import parse_rule
from sandboxes.etims.config import DEFAULT_PORT, EtimsSandboxSettings
from sandboxes.etims.envelope import render_json
from sandboxes.etims.signing import (
    ReceiptFacts,
    communication_key,
    internal_data,
    receipt_signature,
)
from shared.devrun import prepare_environment
from shared.topology import SANDBOXES

OLD = "20180101000000"  # a lastReqDt before everything
CENT = Decimal("0.01")
RATES = {"A": Decimal(0), "B": Decimal(16), "C": Decimal(0), "D": Decimal(0), "E": Decimal(8)}
BASE32 = re.compile(r"[A-Z2-7]+")
_taxpayers = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_tin() -> str:
    """A fresh KRA PIN for each test's taxpayer."""
    return f"P{next(_taxpayers):09d}K"


def r2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# -- the running sandbox ----------------------------------------------------------------------


@dataclass
class Sandbox:
    """The sandbox on a real port, and the raw calls tests make."""

    url: str
    client: httpx.Client

    def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        """One eTIMS call; the envelope (asserting HTTP 200, as KRA answers even errors)."""
        reply = self.client.post(
            f"{self.url}{path}",
            content=render_json(body),  # exact decimals: json.dumps cannot write a Decimal
            headers={"content-type": "application/json", **(headers or {})},
            timeout=timeout,
        )
        assert reply.status_code == 200, reply.text
        envelope: dict[str, Any] = reply.json()
        assert set(envelope) == {"resultCd", "resultMsg", "resultDt", "data"}
        return envelope

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        reply = self.client.request(method, f"{self.url}/sandbox{path}", json=body, timeout=10)
        assert reply.status_code < 300, reply.text
        return reply.json()

    def faults(self, *rules: dict[str, Any], latency_ms: int = 0, hang_ms: int = 1000) -> None:
        self.admin(
            "POST", "/faults", {"latency_ms": latency_ms, "hang_ms": hang_ms, "rules": list(rules)}
        )

    def initialize(
        self, path: str = "/selectInitOsdcInfo", kind: str = "OSCU", bhf_id: str = "00"
    ) -> Device:
        tin, serial = new_tin(), f"SBX-{kind}-{uuid.uuid4().hex[:12]}"
        envelope = self.post(path, {"tin": tin, "bhfId": bhf_id, "dvcSrlNo": serial})
        assert envelope["resultCd"] == "000", envelope
        return Device(self, tin, bhf_id, serial, envelope["data"]["info"], kind)


@dataclass
class Device:
    """An initialised device and the calls it makes (OSCU headers or VSCU body identity)."""

    sandbox: Sandbox
    tin: str
    bhf_id: str
    serial: str
    info: dict[str, Any]
    kind: str = "OSCU"

    @property
    def headers(self) -> dict[str, str]:
        return {"tin": self.tin, "bhfId": self.bhf_id, "cmcKey": self.info["cmcKey"]}

    def call(self, operation: str, body: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        if self.kind == "VSCU":
            path = VSCU_PATHS[operation]
            return self.sandbox.post(
                path, {"tin": self.tin, "bhfId": self.bhf_id, **body}, timeout=timeout
            )
        return self.sandbox.post(f"/{operation}", body, self.headers, timeout=timeout)

    def save_item(self, item_cd: str, tax_type: str, item_type: str = "2") -> dict[str, Any]:
        return self.call("saveItem", item_body(item_cd, tax_type, item_type))

    def sell(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("saveTrnsSalesOsdc", body)


VSCU_PATHS = {
    "selectCodeList": "/code/selectCodes",
    "saveItem": "/items/saveItems",
    "saveTrnsSalesOsdc": "/trnsSales/saveSales",
    "selectInvoiceDetails": "/trnsSales/selectInvoiceDetails",
}


def _serve(**overrides: Any) -> Iterator[Sandbox]:
    port = _free_port()
    settings = EtimsSandboxSettings(port=port, log_level="WARNING", **overrides)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the sandbox did not start"
        time.sleep(0.01)
    with httpx.Client() as client:
        try:
            yield Sandbox(f"http://127.0.0.1:{port}", client)
        finally:
            server.should_exit = True
            thread.join(10)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from _serve(fault_seed=7)


@pytest.fixture(autouse=True)
def _no_faults_left(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.admin("DELETE", "/faults")


@pytest.fixture
def device(sandbox: Sandbox) -> Device:
    return sandbox.initialize()


# -- request bodies ---------------------------------------------------------------------------


def item_code(tax_type: str, sequence: int = 1, item_type: str = "2") -> str:
    """KE + item type + packaging NT + quantity unit U + 7 digits; one item per tax type."""
    return f"KE{item_type}NTU{sequence + 100 * 'ABCDE'.index(tax_type):07d}"


def item_body(item_cd: str, tax_type: str, item_type: str = "2") -> dict[str, Any]:
    return {
        "itemCd": item_cd,
        "itemClsCd": "5059690800",
        "itemTyCd": item_type,
        "itemNm": f"Sandbox item {item_cd}",
        "orgnNatCd": "KE",
        "pkgUnitCd": "NT",
        "qtyUnitCd": "U",
        "taxTyCd": tax_type,
        "dftPrc": Decimal("100.00"),
        "isrcAplcbYn": "N",
        "useYn": "Y",
        "regrId": "admin",
        "regrNm": "Admin",
        "modrId": "admin",
        "modrNm": "Admin",
    }


@dataclass(frozen=True)
class Sold:
    """A line to sell: tax type, quantity, unit price and discount rate."""

    tax_type: str
    qty: Decimal
    prc: Decimal
    dc_rt: Decimal = Decimal(0)


def sale_body(
    invc_no: int,
    lines: list[Sold],
    *,
    exclusive: bool = False,
    receipt_type: str = "S",
    sales_type: str = "N",
    original: int = 0,
    buyer_tin: str | None = None,
) -> dict[str, Any]:
    """A correct sale (the test's own arithmetic, independent of the sandbox's)."""
    items: list[dict[str, Any]] = []
    for seq, line in enumerate(lines, start=1):
        supply = r2(line.qty * line.prc)
        discount = r2(supply * line.dc_rt / 100)
        taxable = supply - discount
        rate = RATES[line.tax_type]
        tax = r2(taxable * rate / 100) if exclusive else r2(taxable * rate / (100 + rate))
        items.append(
            {
                "itemSeq": seq,
                "itemCd": item_code(line.tax_type),
                "itemClsCd": "5059690800",
                "itemNm": f"Sandbox item {line.tax_type}",
                "pkgUnitCd": "NT",
                "pkg": line.qty,
                "qtyUnitCd": "U",
                "qty": line.qty,
                "prc": line.prc,
                "splyAmt": supply,
                "dcRt": line.dc_rt,
                "dcAmt": discount,
                "taxTyCd": line.tax_type,
                "taxblAmt": taxable,
                "taxAmt": tax,
                "totAmt": taxable + tax if exclusive else taxable,
            }
        )
    body: dict[str, Any] = {
        "invcNo": invc_no,
        "orgInvcNo": original,
        "trdInvcNo": f"KASSA-{invc_no}",
        "custTin": buyer_tin,
        "custNm": "Walk-in customer",
        "salesTyCd": sales_type,
        "rcptTyCd": receipt_type,
        "pmtTyCd": "06",
        "salesSttsCd": "02",
        "cfmDt": "20250301101500",
        "salesDt": "20250301",
        "rfdRsnCd": "06" if receipt_type == "R" else None,
        "totItemCnt": len(items),
        "prchrAcptcYn": "N",
        "regrId": "cashier",
        "regrNm": "Cashier",
        "modrId": "cashier",
        "modrNm": "Cashier",
        "receipt": {"rcptPbctDt": "20250301101500", "prchrAcptcYn": "N", "custTin": buyer_tin},
        "itemList": items,
    }
    for tax_type in "ABCDE":
        of_type = [item for item in items if item["taxTyCd"] == tax_type]
        body[f"taxblAmt{tax_type}"] = sum((i["taxblAmt"] for i in of_type), Decimal(0))
        body[f"taxRt{tax_type}"] = RATES[tax_type]
        body[f"taxAmt{tax_type}"] = sum((i["taxAmt"] for i in of_type), Decimal(0))
    body["totTaxblAmt"] = sum((i["taxblAmt"] for i in items), Decimal(0))
    body["totTaxAmt"] = sum((i["taxAmt"] for i in items), Decimal(0))
    body["totAmt"] = sum((i["totAmt"] for i in items), Decimal(0))
    return body


def one_b_sale(invc_no: int) -> dict[str, Any]:
    return sale_body(invc_no, [Sold("B", Decimal(1), Decimal("116.00"))])


def ready_to_sell(device: Device, *tax_types: str) -> Device:
    for tax_type in tax_types or ("B",):
        assert device.save_item(item_code(tax_type), tax_type)["resultCd"] == "000"
    return device


def stock_io_body(sar_no: int, item_cd: str, qty: Decimal, sar_type: str = "02") -> dict[str, Any]:
    supply = r2(qty * Decimal("116.00"))
    tax = r2(supply * 16 / 116)
    return {
        "sarNo": sar_no,
        "orgSarNo": 0,
        "regTyCd": "M",
        "sarTyCd": sar_type,
        "ocrnDt": "20250301",
        "totItemCnt": 1,
        "totTaxblAmt": supply,
        "totTaxAmt": tax,
        "totAmt": supply,
        "regrId": "store",
        "regrNm": "Store",
        "itemList": [
            {
                "itemSeq": 1,
                "itemCd": item_cd,
                "itemClsCd": "5059690800",
                "itemNm": "Sandbox item B",
                "pkgUnitCd": "NT",
                "pkg": qty,
                "qtyUnitCd": "U",
                "qty": qty,
                "prc": Decimal("116.00"),
                "splyAmt": supply,
                "totDcAmt": Decimal(0),
                "taxTyCd": "B",
                "taxblAmt": supply,
                "taxAmt": tax,
                "totAmt": supply,
            }
        ],
    }


# -- envelope and headers ---------------------------------------------------------------------


class TestEnvelopeAndHeaders:
    def test_every_reply_is_http_200_with_a_nairobi_result_time(self, sandbox: Sandbox) -> None:
        envelope = sandbox.post("/selectCodeList", {"lastReqDt": OLD})
        assert envelope["resultCd"] == "900"
        assert envelope["data"] is None
        stamp = datetime.strptime(envelope["resultDt"], "%Y%m%d%H%M%S")
        nairobi_now = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=3)
        assert abs((stamp - nairobi_now).total_seconds()) < 5

    @pytest.mark.parametrize("missing", ["tin", "bhfId", "cmcKey"])
    def test_a_missing_header_is_900(self, device: Device, missing: str) -> None:
        headers = {k: v for k, v in device.headers.items() if k != missing}
        envelope = device.sandbox.post("/selectCodeList", {"lastReqDt": OLD}, headers)
        assert envelope["resultCd"] == "900"
        assert missing in envelope["resultMsg"]

    def test_a_wrong_cmc_key_is_910_naming_it(self, device: Device) -> None:
        headers = {**device.headers, "cmcKey": "0" * 32}
        envelope = device.sandbox.post("/selectCodeList", {"lastReqDt": OLD}, headers)
        assert envelope["resultCd"] == "910"
        assert envelope["resultMsg"].startswith("cmcKey:")

    def test_another_branchs_headers_with_this_key_are_910(self, device: Device) -> None:
        headers = {**device.headers, "bhfId": "01"}
        envelope = device.sandbox.post("/selectCodeList", {"lastReqDt": OLD}, headers)
        assert envelope["resultCd"] == "910"

    def test_a_malformed_pin_header_is_910(self, device: Device) -> None:
        headers = {**device.headers, "tin": "12345"}
        envelope = device.sandbox.post("/selectCodeList", {"lastReqDt": OLD}, headers)
        assert envelope["resultCd"] == "910"
        assert "tin" in envelope["resultMsg"]

    def test_an_empty_body_is_911_and_broken_json_is_910(self, device: Device) -> None:
        url = f"{device.sandbox.url}/selectCodeList"
        empty = httpx.post(url, content=b"", headers=device.headers).json()
        assert empty["resultCd"] == "911"
        broken = httpx.post(url, content=b"{lastReqDt:", headers=device.headers).json()
        assert broken["resultCd"] == "910"
        assert broken["resultMsg"].startswith("body:")

    def test_a_get_is_912_with_http_200(self, sandbox: Sandbox) -> None:
        reply = httpx.get(f"{sandbox.url}/saveTrnsSalesOsdc")
        assert reply.status_code == 200
        assert reply.json()["resultCd"] == "912"


# -- device initialisation --------------------------------------------------------------------


class TestInitialisation:
    def test_first_init_gives_info_and_key_then_902_without_it(self, sandbox: Sandbox) -> None:
        tin, serial = new_tin(), f"SBX-OSCU-{uuid.uuid4().hex[:8]}"
        body = {"tin": tin, "bhfId": "00", "dvcSrlNo": serial}
        first = sandbox.post("/selectInitOsdcInfo", body)
        assert first["resultCd"] == "000"
        info = first["data"]["info"]
        assert info["tin"] == tin
        assert info["bhfId"] == "00"
        assert re.fullmatch(r"[0-9a-f]{32}", info["cmcKey"])
        assert re.fullmatch(r"KRACU0\d{8}", info["sdcId"])
        assert re.fullmatch(r"WIS\d{8}", info["mrcNo"])
        assert re.fullmatch(r"\d{16}", info["dvcId"])
        again = sandbox.post("/selectInitOsdcInfo", body)
        assert again["resultCd"] == "902"
        assert again["data"] is None
        assert info["cmcKey"] not in str(again)

    def test_an_unknown_serial_is_901(self, sandbox: Sandbox) -> None:
        body = {"tin": new_tin(), "bhfId": "00", "dvcSrlNo": "NOT-APPROVED-1"}
        assert sandbox.post("/selectInitOsdcInfo", body)["resultCd"] == "901"

    def test_a_vscu_serial_on_the_oscu_path_is_903(self, sandbox: Sandbox) -> None:
        body = {"tin": new_tin(), "bhfId": "00", "dvcSrlNo": "SBX-VSCU-on-oscu"}
        assert sandbox.post("/selectInitOsdcInfo", body)["resultCd"] == "903"

    def test_a_registered_serial_is_only_for_its_taxpayer(self, sandbox: Sandbox) -> None:
        owner = new_tin()
        sandbox.admin("POST", "/devices", {"serial": "REG-DEV-1", "tin": owner, "bhf_id": "00"})
        stranger = {"tin": new_tin(), "bhfId": "00", "dvcSrlNo": "REG-DEV-1"}
        assert sandbox.post("/selectInitOsdcInfo", stranger)["resultCd"] == "901"
        mine = {"tin": owner, "bhfId": "00", "dvcSrlNo": "REG-DEV-1"}
        assert sandbox.post("/selectInitOsdcInfo", mine)["resultCd"] == "000"

    def test_a_bad_pin_is_910(self, sandbox: Sandbox) -> None:
        body = {"tin": "A1", "bhfId": "00", "dvcSrlNo": "SBX-OSCU-x1"}
        envelope = sandbox.post("/selectInitOsdcInfo", body)
        assert envelope["resultCd"] == "910"
        assert envelope["resultMsg"].startswith("tin:")


# -- code lists and item classes --------------------------------------------------------------


class TestCodeLists:
    def test_code_list_has_tax_rates_and_payment_types(self, device: Device) -> None:
        envelope = device.call("selectCodeList", {"lastReqDt": OLD})
        assert envelope["resultCd"] == "000"
        classes = {c["cdCls"]: c for c in envelope["data"]["clsList"]}
        rates = {d["cd"]: d["userDfnCd1"] for d in classes["04"]["dtlList"]}
        assert rates == {"A": "0", "B": "16", "C": "0", "D": "0", "E": "8"}
        payments = [d["cd"] for d in classes["07"]["dtlList"]]
        assert payments == ["01", "02", "03", "04", "05", "06", "07"]
        for unit_class in ("10", "17", "05", "32", "37"):
            assert classes[unit_class]["dtlList"]

    def test_nothing_changed_since_the_last_request_is_001(self, device: Device) -> None:
        first = device.call("selectCodeList", {"lastReqDt": OLD})
        again = device.call("selectCodeList", {"lastReqDt": first["resultDt"]})
        assert again["resultCd"] == "001"
        assert again["data"] is None

    def test_a_changed_code_comes_back_with_its_class(self, device: Device) -> None:
        since = device.call("selectCodeList", {"lastReqDt": OLD})["resultDt"]
        device.sandbox.admin("POST", "/codes", {"cd_cls": "33", "cd": "ZAR", "name": "Rand"})
        try:
            envelope = device.call("selectCodeList", {"lastReqDt": since})
        finally:  # other tests expect the seeded code lists, unchanged
            device.sandbox.admin("POST", "/reset")
        assert envelope["resultCd"] == "000"
        (changed,) = envelope["data"]["clsList"]
        assert changed["cdCls"] == "33"
        assert "ZAR" in [d["cd"] for d in changed["dtlList"]]

    def test_last_request_date_is_required(self, device: Device) -> None:
        envelope = device.call("selectCodeList", {})
        assert envelope["resultCd"] == "910"
        assert envelope["resultMsg"].startswith("lastReqDt:")

    def test_item_classes_with_and_without_changes(self, device: Device) -> None:
        envelope = device.call("selectItemClsList", {"lastReqDt": OLD})
        classes = {c["itemClsCd"]: c for c in envelope["data"]["itemClsList"]}
        assert classes["5059690800"]["taxTyCd"] == "B"
        later = device.call("selectItemClsList", {"lastReqDt": envelope["resultDt"]})
        assert later["resultCd"] == "001"


# -- items ------------------------------------------------------------------------------------


class TestItems:
    def test_a_saved_item_is_listed_once(self, device: Device) -> None:
        assert device.save_item("KE2NTU0000001", "B")["resultCd"] == "000"
        listed = device.call("selectItemList", {"lastReqDt": OLD})
        assert [item["itemCd"] for item in listed["data"]["itemList"]] == ["KE2NTU0000001"]
        later = device.call("selectItemList", {"lastReqDt": "20990101000000"})
        assert later["resultCd"] == "001"

    @pytest.mark.parametrize(
        ("item_cd", "tax_type", "field"),
        [
            ("KE1NTU0000001", "B", "itemCd"),  # says raw material, body says finished product
            ("KE2NTU001", "B", "itemCd"),  # sequence too short
            ("KE2NTU0000001", "F", "taxTyCd"),
        ],
    )
    def test_a_bad_item_is_910_naming_the_field(
        self, device: Device, item_cd: str, tax_type: str, field: str
    ) -> None:
        envelope = device.call("saveItem", item_body(item_cd, tax_type))
        assert envelope["resultCd"] == "910"
        assert envelope["resultMsg"].startswith(f"{field}:")


# -- sales ------------------------------------------------------------------------------------


class TestSales:
    def test_b_116_inclusive_is_accepted_with_a_receipt(self, device: Device) -> None:
        ready_to_sell(device, "B")
        body = one_b_sale(1)
        assert (body["taxblAmtB"], body["taxAmtB"], body["totAmt"]) == (
            Decimal("116.00"),
            Decimal("16.00"),
            Decimal("116.00"),
        )
        envelope = device.sell(body)
        assert envelope["resultCd"] == "000", envelope
        receipt = envelope["data"]
        assert (receipt["curRcptNo"], receipt["totRcptNo"]) == (1, 1)
        assert len(receipt["intrlData"]) == 26
        assert BASE32.fullmatch(receipt["intrlData"])
        assert len(receipt["rcptSign"]) == 16
        assert BASE32.fullmatch(receipt["rcptSign"])
        assert re.fullmatch(r"\d{14}", receipt["sdcDateTime"])

    def test_counters_count_per_label_and_overall(self, device: Device) -> None:
        ready_to_sell(device, "B")
        numbers = [
            device.sell(one_b_sale(1))["data"],
            device.sell(one_b_sale(2))["data"],
            device.sell(
                sale_body(3, [Sold("B", Decimal(1), Decimal(116))], receipt_type="R", original=1)
            )["data"],
            device.sell(sale_body(4, [Sold("B", Decimal(1), Decimal(116))], sales_type="T"))[
                "data"
            ],
            device.sell(one_b_sale(5))["data"],
        ]
        assert [(n["curRcptNo"], n["totRcptNo"]) for n in numbers] == [
            (1, 1),
            (2, 2),
            (1, 3),  # first normal credit note (NR)
            (1, 4),  # first training sale (TS)
            (3, 5),
        ]

    def test_every_tax_type_with_discounts_inclusive_and_exclusive(self, device: Device) -> None:
        ready_to_sell(device, "A", "B", "C", "D", "E")
        lines = [
            Sold("A", Decimal("3"), Decimal("33.33"), Decimal("10")),
            Sold("B", Decimal("2.5"), Decimal("99.99"), Decimal("12.5")),
            Sold("C", Decimal("1"), Decimal("500")),
            Sold("D", Decimal("7"), Decimal("0.15")),
            Sold("E", Decimal("1.75"), Decimal("181.43"), Decimal("3")),
        ]
        inclusive = sale_body(1, lines)
        assert device.sell(inclusive)["resultCd"] == "000"
        exclusive = sale_body(2, lines, exclusive=True)
        assert exclusive["totAmt"] == exclusive["totTaxblAmt"] + exclusive["totTaxAmt"]
        assert device.sell(exclusive)["resultCd"] == "000"

    @pytest.mark.parametrize(
        ("field", "spoil"),
        [
            ("itemList[0].splyAmt", lambda b: b["itemList"][0].update(splyAmt=Decimal("116.01"))),
            ("itemList[0].dcAmt", lambda b: b["itemList"][0].update(dcAmt=Decimal("1.00"))),
            ("itemList[0].taxblAmt", lambda b: b["itemList"][0].update(taxblAmt=Decimal("115"))),
            ("itemList[0].taxAmt", lambda b: b["itemList"][0].update(taxAmt=Decimal("15.99"))),
            ("itemList[0].totAmt", lambda b: b["itemList"][0].update(totAmt=Decimal("130.00"))),
            ("taxblAmtB", lambda b: b.update(taxblAmtB=Decimal("100.00"))),
            ("taxRtB", lambda b: b.update(taxRtB=Decimal(18))),
            ("taxAmtB", lambda b: b.update(taxAmtB=Decimal("16.01"))),
            ("taxAmtA", lambda b: b.update(taxAmtA=Decimal("0.01"))),
            ("totTaxblAmt", lambda b: b.update(totTaxblAmt=Decimal("116.01"))),
            ("totTaxAmt", lambda b: b.update(totTaxAmt=Decimal("16.01"))),
            ("totAmt", lambda b: b.update(totAmt=Decimal("132.00"))),
            ("totItemCnt", lambda b: b.update(totItemCnt=2)),
            ("pmtTyCd", lambda b: b.update(pmtTyCd="99")),
            ("salesTyCd", lambda b: b.update(salesTyCd="X")),
            ("rcptTyCd", lambda b: b.update(rcptTyCd="Q")),
            ("itemList[0].taxTyCd", lambda b: b["itemList"][0].update(taxTyCd="F")),
            ("itemList[0].qtyUnitCd", lambda b: b["itemList"][0].update(qtyUnitCd="XX")),
            ("itemList[0].itemSeq", lambda b: b["itemList"][0].update(itemSeq=2)),
            ("itemList[0].itemCd", lambda b: b["itemList"][0].update(itemCd="KE2NTU9999999")),
            ("itemList[0].prc", lambda b: b["itemList"][0].update(prc=Decimal("116.001"))),
            ("itemList[0].qty", lambda b: b["itemList"][0].update(qty="1")),
            ("invcNo", lambda b: b.update(invcNo="1")),
            ("orgInvcNo", lambda b: b.update(orgInvcNo=5)),
            ("custTin", lambda b: b.update(custTin="P0512345")),
            ("trdInvcNo", lambda b: b.update(trdInvcNo="X" * 51)),
            ("salesDt", lambda b: b.update(salesDt="2025-03-01")),
            ("cfmDt", lambda b: b.update(cfmDt="20251399101500")),
            ("receipt.rcptPbctDt", lambda b: b["receipt"].pop("rcptPbctDt")),
            ("regrNm", lambda b: b.pop("regrNm")),
        ],
    )
    def test_a_wrong_figure_or_code_is_910_naming_the_field(
        self, device: Device, field: str, spoil: Callable[[dict[str, Any]], None]
    ) -> None:
        ready_to_sell(device, "B")
        body = one_b_sale(1)
        spoil(body)
        envelope = device.sell(body)
        assert envelope["resultCd"] == "910", envelope
        assert envelope["resultMsg"].startswith(f"{field}:"), envelope["resultMsg"]
        # nothing was counted: the corrected sale is receipt 1
        accepted = device.sell(one_b_sale(1))["data"]
        assert (accepted["curRcptNo"], accepted["totRcptNo"]) == (1, 1)

    def test_a_credit_note_needs_an_original_sale_and_a_reason(self, device: Device) -> None:
        ready_to_sell(device, "B")
        line = [Sold("B", Decimal(1), Decimal(116))]
        orphan = device.sell(sale_body(1, line, receipt_type="R", original=9))
        assert orphan["resultMsg"].startswith("orgInvcNo:")
        device.sell(one_b_sale(2))
        no_reason = sale_body(3, line, receipt_type="R", original=2)
        no_reason["rfdRsnCd"] = None
        assert device.sell(no_reason)["resultMsg"].startswith("rfdRsnCd:")

    def test_a_used_invoice_number_is_994_whatever_the_body(self, device: Device) -> None:
        ready_to_sell(device, "B")
        assert device.sell(one_b_sale(7))["resultCd"] == "000"
        assert device.sell(one_b_sale(7))["resultCd"] == "994"
        different = sale_body(7, [Sold("B", Decimal(2), Decimal("50.00"))])
        assert device.sell(different)["resultCd"] == "994"
        assert device.sell(one_b_sale(8))["data"]["totRcptNo"] == 2

    def test_select_invoice_details_returns_the_stored_sale_and_receipt(
        self, device: Device
    ) -> None:
        ready_to_sell(device, "B")
        receipt = device.sell(one_b_sale(4))["data"]
        found = device.call("selectInvoiceDetails", {"invcNo": 4})
        assert found["resultCd"] == "000"
        details = found["data"]
        for key in ("curRcptNo", "totRcptNo", "intrlData", "rcptSign", "sdcDateTime"):
            assert details[key] == receipt[key]
        assert details["invcNo"] == 4
        assert Decimal(str(details["totAmt"])) == Decimal("116.00")
        assert details["sdcId"] == device.info["sdcId"]
        assert details["mrcNo"] == device.info["mrcNo"]
        missing = device.call("selectInvoiceDetails", {"invcNo": 5})
        assert missing["resultCd"] == "001"

    def test_amounts_leave_as_exact_json_numbers(self, device: Device) -> None:
        ready_to_sell(device, "B")
        device.sell(one_b_sale(1))
        raw = httpx.post(
            f"{device.sandbox.url}/selectInvoiceDetails",
            json={"invcNo": 1},
            headers=device.headers,
        ).text
        assert '"totAmt":116.00' in raw
        assert '"taxAmtB":16.00' in raw


class TestReceiptSignature:
    def test_intrl_data_and_signature_follow_the_published_derivation(self, device: Device) -> None:
        ready_to_sell(device, "B")
        receipt = device.sell(one_b_sale(1))["data"]
        facts = ReceiptFacts(
            tin=device.tin,
            bhf_id=device.bhf_id,
            sdc_id=device.info["sdcId"],
            invc_no=1,
            receipt_label="NS",
            cur_rcpt_no=1,
            tot_rcpt_no=1,
            taxable_by_type={"B": Decimal("116.00")},
            tax_by_type={"B": Decimal("16.00")},
            total=Decimal("116.00"),
            sdc_date_time=receipt["sdcDateTime"],
        )
        key = device.info["cmcKey"]
        assert receipt["intrlData"] == internal_data(key, facts)
        assert receipt["rcptSign"] == receipt_signature(key, facts)

    def test_same_inputs_same_signature_another_key_another(self) -> None:
        facts = ReceiptFacts(
            "P000000001K", "00", "KRACU012345678", 9, "NS", 9, 12,
            {"B": Decimal("116")}, {"B": Decimal("16")}, Decimal("116"), "20250301101500",
        )  # fmt: skip
        key = communication_key("secret", "P000000001K", "00", "SBX-OSCU-1")
        other = communication_key("secret", "P000000001K", "00", "SBX-OSCU-2")
        assert receipt_signature(key, facts) == receipt_signature(key, facts)
        assert internal_data(key, facts) == internal_data(key, facts)
        assert receipt_signature(key, facts) != receipt_signature(other, facts)
        assert internal_data(key, facts) != internal_data(other, facts)
        # amounts count by value, not by how many zeros they were written with
        assert facts.canonical().count("116.00") == 2

    def test_a_kept_key_of_a_seeded_serial_survives_the_sandbox_forgetting(
        self, sandbox: Sandbox
    ) -> None:
        tin = new_tin()
        body = {"tin": tin, "bhfId": "00", "dvcSrlNo": "KASSA-OSCU-003"}
        info = sandbox.post("/selectInitOsdcInfo", body)["data"]["info"]
        device = Device(sandbox, tin, "00", "KASSA-OSCU-003", info)
        sandbox.admin("POST", "/reset")
        assert device.call("selectCodeList", {"lastReqDt": OLD})["resultCd"] == "000"
        assert sandbox.post("/selectInitOsdcInfo", body)["resultCd"] == "902"


# -- the ambiguous timeout and other faults ---------------------------------------------------


class TestFaults:
    def test_timeout_after_commit_is_reconciled_and_a_resend_is_994(self, device: Device) -> None:
        ready_to_sell(device, "B")
        device.sandbox.faults(
            {"kind": "timeout_after_commit", "count": 1, "operations": ["saveTrnsSalesOsdc"]},
            hang_ms=1500,
        )
        with pytest.raises(httpx.ReadTimeout):
            device.call("saveTrnsSalesOsdc", one_b_sale(1), timeout=0.3)
        found = device.call("selectInvoiceDetails", {"invcNo": 1})
        assert found["resultCd"] == "000"
        assert found["data"]["totRcptNo"] == 1
        assert device.sell(one_b_sale(1))["resultCd"] == "994"
        assert device.sell(one_b_sale(2))["data"]["totRcptNo"] == 2

    def test_a_dropped_connection_after_commit_leaves_the_sale_stored(self, device: Device) -> None:
        ready_to_sell(device, "B")
        device.sandbox.faults(
            {"kind": "drop_after_commit", "count": 1, "operations": ["saveTrnsSalesOsdc"]}
        )
        with pytest.raises(httpx.RemoteProtocolError):
            device.sell(one_b_sale(1))
        assert device.call("selectInvoiceDetails", {"invcNo": 1})["resultCd"] == "000"
        assert device.sell(one_b_sale(1))["resultCd"] == "994"

    @pytest.mark.parametrize("code", ["894", "990", "999"])
    def test_an_error_fault_stores_nothing_and_passes(self, device: Device, code: str) -> None:
        ready_to_sell(device, "B")
        device.sandbox.faults({"kind": code, "count": 2, "operations": ["saveTrnsSalesOsdc"]})
        assert device.sell(one_b_sale(1))["resultCd"] == code
        assert device.sell(one_b_sale(1))["resultCd"] == code
        assert device.call("selectInvoiceDetails", {"invcNo": 1})["resultCd"] == "001"
        assert device.sell(one_b_sale(1))["data"]["totRcptNo"] == 1

    def test_a_rate_fault_hits_some_calls(self, device: Device) -> None:
        device.sandbox.faults({"kind": "999", "rate": 0.5, "operations": ["selectCodeList"]})
        codes = [device.call("selectCodeList", {"lastReqDt": OLD})["resultCd"] for _ in range(40)]
        assert 5 < codes.count("999") < 35
        assert set(codes) == {"000", "999"}

    def test_latency_delays_every_reply(self, device: Device) -> None:
        device.sandbox.faults(latency_ms=250)
        started = time.perf_counter()
        device.call("selectNoticeList", {"lastReqDt": OLD})
        assert time.perf_counter() - started >= 0.25

    def test_state_reports_faults_and_counters(self, device: Device) -> None:
        ready_to_sell(device, "B")
        device.sandbox.faults({"kind": "990", "count": 1, "operations": ["saveTrnsSalesOsdc"]})
        device.sell(one_b_sale(1))
        device.sell(one_b_sale(1))
        state = device.sandbox.admin("GET", "/state")
        (mine,) = [d for d in state["devices"] if d["serial"] == device.serial]
        assert mine["receipt_counters"] == {"NS": 1}
        assert "cmc" not in str(mine).lower()
        assert state["faults"]["rules"][0]["fired"] == 1
        assert state["operations"]["saveTrnsSalesOsdc"]["faults"]["990"] >= 1


# -- purchases and stock ----------------------------------------------------------------------


class TestPurchasesAndStock:
    def test_a_sale_to_a_pin_is_that_pins_purchase(self, sandbox: Sandbox) -> None:
        seller = ready_to_sell(sandbox.initialize(), "B")
        buyer = sandbox.initialize()
        sale = sale_body(1, [Sold("B", Decimal(1), Decimal(116))], buyer_tin=buyer.tin)
        assert seller.sell(sale)["resultCd"] == "000"
        purchases = buyer.call("selectTrnsPurchaseSalesList", {"lastReqDt": OLD})
        (purchase,) = purchases["data"]["saleList"]
        assert (purchase["spplrTin"], purchase["spplrInvcNo"]) == (seller.tin, 1)
        assert purchase["itemList"][0]["taxAmt"] == 16
        nothing = seller.call("selectTrnsPurchaseSalesList", {"lastReqDt": OLD})
        assert nothing["resultCd"] == "001"

    def test_a_purchase_is_checked_and_unique(self, device: Device) -> None:
        body = sale_body(1, [Sold("B", Decimal(2), Decimal("58.00"))])
        for key in ("trdInvcNo", "custTin", "custNm", "salesTyCd", "salesSttsCd", "receipt"):
            body.pop(key)
        body.update(
            regTyCd="M", pchsTyCd="N", rcptTyCd="P", pchsSttsCd="02", pchsDt="20250301",
            spplrTin="P051234567X", spplrNm="Supplier Ltd",
        )  # fmt: skip
        assert device.call("insertTrnsPurchase", body)["resultCd"] == "000"
        assert device.call("insertTrnsPurchase", body)["resultCd"] == "994"
        body["invcNo"] = 2
        body["taxAmtB"] = Decimal("16.01")
        assert device.call("insertTrnsPurchase", body)["resultMsg"].startswith("taxAmtB:")

    def test_stock_master_comes_after_a_movement(self, device: Device) -> None:
        ready_to_sell(device, "B")
        master = {"itemCd": item_code("B"), "rsdQty": 10, "regrId": "s", "regrNm": "Store"}
        early = device.call("saveStockMaster", master)
        assert early["resultCd"] == "910"
        assert early["resultMsg"].startswith("itemCd:")
        moved = device.call("insertStockIO", stock_io_body(1, item_code("B"), Decimal(10)))
        assert moved["resultCd"] == "000", moved
        assert (
            device.call("insertStockIO", stock_io_body(1, item_code("B"), Decimal(1)))["resultCd"]
            == "994"
        )
        assert device.call("saveStockMaster", master)["resultCd"] == "000"
        moves = device.call("selectStockMoveList", {"lastReqDt": OLD})
        assert [move["sarNo"] for move in moves["data"]["stockList"]] == [1]

    def test_a_stock_movement_is_checked_to_the_cent(self, device: Device) -> None:
        body = stock_io_body(1, item_code("B"), Decimal(3))
        body["itemList"][0].pop("itemCd")  # an unregistered line may leave itemCd out
        body["totTaxAmt"] += CENT
        envelope = device.call("insertStockIO", body)
        assert envelope["resultMsg"].startswith("totTaxAmt:")


# -- the VSCU profile -------------------------------------------------------------------------


class TestVscu:
    def test_a_vscu_device_sells_on_the_vscu_paths(self, sandbox: Sandbox) -> None:
        vscu = sandbox.initialize("/initializer/selectInitInfo", kind="VSCU")
        assert vscu.call("selectCodeList", {"lastReqDt": OLD})["resultCd"] == "000"
        assert vscu.save_item(item_code("B"), "B")["resultCd"] == "000"
        receipt = vscu.sell(one_b_sale(1))
        assert receipt["resultCd"] == "000", receipt
        assert vscu.sell(one_b_sale(1))["resultCd"] == "994"
        found = vscu.call("selectInvoiceDetails", {"invcNo": 1})
        assert found["data"]["rcptSign"] == receipt["data"]["rcptSign"]

    def test_an_oscu_serial_cannot_initialise_a_vscu(self, sandbox: Sandbox) -> None:
        body = {"tin": new_tin(), "bhfId": "00", "dvcSrlNo": "SBX-OSCU-as-vscu"}
        assert sandbox.post("/initializer/selectInitInfo", body)["resultCd"] == "901"

    def test_a_branch_without_a_vscu_is_901(self, sandbox: Sandbox) -> None:
        body = {"tin": new_tin(), "bhfId": "00", "lastReqDt": OLD}
        assert sandbox.post("/code/selectCodes", body)["resultCd"] == "901"

    def test_an_oscu_device_is_not_served_on_vscu_paths(self, device: Device) -> None:
        body = {"tin": device.tin, "bhfId": device.bhf_id, "lastReqDt": OLD}
        assert device.sandbox.post("/code/selectCodes", body)["resultCd"] == "901"


# -- how kassa run finds the sandbox ----------------------------------------------------------


class TestTopology:
    def test_kassa_run_points_kra_base_url_at_the_sandbox(self, tmp_path: Path) -> None:
        (entry,) = [sandbox for sandbox in SANDBOXES if sandbox.name == "etims"]
        assert (entry.module, entry.port, entry.url_env) == (
            "sandboxes.etims",
            DEFAULT_PORT,
            "KRA_BASE_URL",
        )
        env = prepare_environment({"KASSA_PORT_OFFSET": "100"}, tmp_path)
        assert env["KRA_BASE_URL"] == f"http://127.0.0.1:{DEFAULT_PORT + 100}"
        chosen = prepare_environment(
            {"KRA_BASE_URL": "https://etims-api-sbx.kra.go.ke/etims-api"}, tmp_path
        )
        assert chosen["KRA_BASE_URL"] == "https://etims-api-sbx.kra.go.ke/etims-api"

    def test_cli_fault_rules(self) -> None:
        assert parse_rule("999:3:saveTrnsSalesOsdc") == {
            "kind": "999",
            "count": 3,
            "operations": ["saveTrnsSalesOsdc"],
        }
        assert parse_rule("timeout_after_commit") == {"kind": "timeout_after_commit", "count": None}


class TestSettings:
    def test_lists_are_comma_separated_and_rates_json(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ETIMS_SANDBOX_OSCU_SERIALS", "DEV-1, DEV-2")
        monkeypatch.setenv(
            "ETIMS_SANDBOX_FAULT_RATES", '{"999": 0.25, "timeout_after_commit": 0.01}'
        )
        settings = EtimsSandboxSettings()
        assert settings.oscu_serials == ["DEV-1", "DEV-2"]
        assert settings.fault_rates == {"999": 0.25, "timeout_after_commit": 0.01}
        assert settings.port == DEFAULT_PORT

    def test_an_unknown_fault_kind_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ETIMS_SANDBOX_FAULT_RATES", '{"500": 0.5}')
        with pytest.raises(ValueError, match="unknown fault kind"):
            EtimsSandboxSettings()

    def test_receipt_numbers_can_be_sent_as_text(self) -> None:
        for texty in _serve(receipt_numbers_as_text=True, oscu_serials=[]):
            device = ready_to_sell(texty.initialize(), "B")
            receipt = device.sell(one_b_sale(1))["data"]
            assert (receipt["curRcptNo"], receipt["totRcptNo"]) == ("1", "1")
