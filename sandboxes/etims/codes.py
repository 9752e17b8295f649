"""KRA's reference data: code lists (``selectCodeList``) and item classes (``selectItemClsList``).

Class numbers follow the spec where it names them (04 tax type, 07 payment type, 11 sale
status, 14 transaction type, 32 credit-note reason, 37 sales receipt type) and KRA's common
numbering elsewhere (05 country, 10 quantity unit, 12 stock in/out type, 17 packaging unit,
24 item type, 26 import item status, 33 currency, 38 purchase receipt type). Tax rates live in
``userDfnCd1`` of class 04, as in KRA's replies: **A exempt 0, B 16, C zero-rated 0, D non-VAT
0, E 8**. Sales are checked against the rates published here, so changing a rate through
``POST /sandbox/codes`` changes what the sandbox accepts, and the next ``selectCodeList``
after the change returns the changed class.

The lists are a representative subset of KRA's (its quantity and packaging units run to
hundreds); every code the fiscal service needs for the tests and the demo is here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sandboxes.etims.envelope import NAIROBI

# When the seeded reference data "changed" at KRA: any lastReqDt before it gets everything.
CATALOG_PUBLISHED_AT = datetime(2024, 3, 5, 9, 0, 0, tzinfo=NAIROBI)

TAX_TYPE = "04"
COUNTRY = "05"
PAYMENT_TYPE = "07"
QUANTITY_UNIT = "10"
SALE_STATUS = "11"
STOCK_IO_TYPE = "12"
TRANSACTION_TYPE = "14"
PACKAGING_UNIT = "17"
ITEM_TYPE = "24"
IMPORT_ITEM_STATUS = "26"
CREDIT_NOTE_REASON = "32"
CURRENCY = "33"
SALES_RECEIPT_TYPE = "37"
PURCHASE_RECEIPT_TYPE = "38"

TAX_TYPES = ("A", "B", "C", "D", "E")
# Registration type (regTyCd of purchases and stock): not a published class, two fixed values.
REGISTRATION_TYPES = frozenset({"A", "M"})
# Stock in/out types that add to stock (01-06); 11-16 take away.
STOCK_IN_TYPES = frozenset({"01", "02", "03", "04", "05", "06"})

Seed = tuple[str, str, list[tuple[str, str] | tuple[str, str, str]]]

_SEED: list[Seed] = [
    (
        TAX_TYPE,
        "Taxation Type",
        [
            ("A", "A-Exempt", "0"),
            ("B", "B-16.00%", "16"),
            ("C", "C-Zero Rated", "0"),
            ("D", "D-Non VAT", "0"),
            ("E", "E-8.00%", "8"),
        ],
    ),
    (
        COUNTRY,
        "Country",
        [
            ("KE", "KENYA"),
            ("UG", "UGANDA"),
            ("TZ", "TANZANIA"),
            ("RW", "RWANDA"),
            ("BI", "BURUNDI"),
            ("SS", "SOUTH SUDAN"),
            ("ET", "ETHIOPIA"),
            ("SO", "SOMALIA"),
            ("CD", "CONGO, THE DEMOCRATIC REPUBLIC"),
            ("ZA", "SOUTH AFRICA"),
            ("NG", "NIGERIA"),
            ("EG", "EGYPT"),
            ("AE", "UNITED ARAB EMIRATES"),
            ("IN", "INDIA"),
            ("CN", "CHINA"),
            ("JP", "JAPAN"),
            ("KR", "KOREA, REPUBLIC OF"),
            ("DE", "GERMANY"),
            ("GB", "UNITED KINGDOM"),
            ("NL", "NETHERLANDS"),
            ("FR", "FRANCE"),
            ("US", "UNITED STATES"),
        ],
    ),
    (
        PAYMENT_TYPE,
        "Payment Type",
        [
            ("01", "CASH"),
            ("02", "CREDIT"),
            ("03", "CASH/CREDIT"),
            ("04", "BANK CHECK"),
            ("05", "DEBIT&CREDIT CARD"),
            ("06", "MOBILE MONEY"),
            ("07", "OTHER"),
        ],
    ),
    (
        QUANTITY_UNIT,
        "Quantity Unit",
        [
            ("4B", "Pair"),
            ("AV", "Cap"),
            ("BA", "Barrel"),
            ("BE", "bundle"),
            ("BG", "bag"),
            ("BL", "block"),
            ("BX", "box"),
            ("CA", "Can"),
            ("CMT", "centimetre"),
            ("DR", "Drum"),
            ("DZ", "Dozen"),
            ("GLL", "Gallon"),
            ("GRM", "Gram"),
            ("KG", "Kilo-Gramme"),
            ("KTM", "kilometre"),
            ("KWT", "kilowatt"),
            ("L", "Litre"),
            ("LTR", "Litre"),
            ("M", "Metre"),
            ("M2", "Square Metre"),
            ("M3", "Cubic Metre"),
            ("MGM", "milligram"),
            ("MTR", "metre"),
            ("NO", "Number"),
            ("PA", "packet"),
            ("PR", "pair"),
            ("SET", "set"),
            ("TNE", "tonne (metric ton)"),
            ("TU", "tube"),
            ("U", "Pieces/item [Number]"),
            ("YRD", "yard"),
        ],
    ),
    (
        SALE_STATUS,
        "Sale Status",
        [
            ("01", "Wait for Approval"),
            ("02", "Approved"),
            ("03", "Cancel Requested"),
            ("04", "Canceled"),
            ("05", "Credit Note Generated"),
            ("06", "Transferred"),
        ],
    ),
    (
        STOCK_IO_TYPE,
        "Stock I/O Type",
        [
            ("01", "Incoming-Import"),
            ("02", "Incoming-Purchase"),
            ("03", "Incoming-Return"),
            ("04", "Incoming-Stock Movement"),
            ("05", "Incoming-Processing"),
            ("06", "Incoming-Adjustment"),
            ("11", "Outgoing-Sale"),
            ("12", "Outgoing-Return"),
            ("13", "Outgoing-Stock Movement"),
            ("14", "Outgoing-Processing"),
            ("15", "Outgoing-Discarding"),
            ("16", "Outgoing-Adjustment"),
        ],
    ),
    (
        TRANSACTION_TYPE,
        "Transaction Type",
        [("C", "Copy"), ("N", "Normal"), ("P", "Proforma"), ("T", "Training")],
    ),
    (
        PACKAGING_UNIT,
        "Packing Unit",
        [
            ("AM", "Ampoule"),
            ("BA", "Barrel"),
            ("BC", "Bottlecrate"),
            ("BE", "Bundle"),
            ("BG", "Bag"),
            ("BJ", "Bucket"),
            ("BK", "Basket"),
            ("BL", "Bale"),
            ("BQ", "Bottle, protected cylindrical"),
            ("BR", "Bar"),
            ("BV", "Bottle, bulbous"),
            ("BZ", "Bag"),
            ("CA", "Can"),
            ("CH", "Chest"),
            ("CT", "Carton"),
            ("CTN", "Container"),
            ("CY", "Cylinder"),
            ("DR", "Drum"),
            ("JR", "Jar"),
            ("JY", "Jerry CAN Cylindrical"),
            ("NT", "Net"),
            ("OU", "Non-Exterior Packaging Unit"),
            ("PG", "Plate"),
            ("RL", "Reel"),
            ("RO", "Roll"),
            ("TN", "TAN"),
            ("TY", "Tank, cylindrical"),
        ],
    ),
    (
        ITEM_TYPE,
        "Item Type",
        [("1", "Raw Material"), ("2", "Finished Product"), ("3", "Service")],
    ),
    (
        IMPORT_ITEM_STATUS,
        "Import Item Status",
        [("1", "Unsent"), ("2", "Waiting"), ("3", "Approved"), ("4", "Cancelled")],
    ),
    (
        CREDIT_NOTE_REASON,
        "Credit Note Reason",
        [
            ("01", "Missing Quantity"),
            ("02", "Missing Data"),
            ("03", "Damaged"),
            ("04", "Wasted"),
            ("05", "Raw Material Shortage"),
            ("06", "Refund"),
            ("07", "Wrong Customer PIN"),
            ("08", "Wrong Customer name"),
            ("09", "Wrong Amount/price"),
            ("10", "Wrong Quantity"),
            ("11", "Wrong Item(s)"),
            ("12", "Wrong tax type"),
            ("13", "Other"),
        ],
    ),
    (
        CURRENCY,
        "Currency",
        [
            ("KES", "Kenyan Shilling"),
            ("USD", "US Dollar"),
            ("EUR", "Euro"),
            ("GBP", "Pound Sterling"),
            ("UGX", "Uganda Shilling"),
            ("TZS", "Tanzanian Shilling"),
        ],
    ),
    (SALES_RECEIPT_TYPE, "Sales Receipt Type", [("S", "Sale"), ("R", "Credit Note")]),
    (
        PURCHASE_RECEIPT_TYPE,
        "Purchase Receipt Type",
        [("P", "Purchase"), ("R", "Credit Note after Purchase")],
    ),
]

# (itemClsCd, itemClsNm, itemClsLvl, taxTyCd, mjrTgYn): UNSPSC-based classes, 10 digits at level 5.
_ITEM_CLASSES: list[tuple[str, str, int, str | None, str | None]] = [
    ("14111400", "Paper products", 3, None, None),
    ("1110162100", "Grocery items", 5, "B", "N"),
    ("1510150600", "Petroleum fuels", 5, "E", "N"),
    ("3133130600", "Non metallic sonic welded structural assemblies", 5, "B", "N"),
    ("4321150100", "Computers", 5, "B", "N"),
    ("4322150100", "Mobile telephones", 5, "B", "N"),
    ("5010150100", "Fresh fruit", 5, "A", "N"),
    ("5020230100", "Bottled soft drinks", 5, "B", "N"),
    ("5022110801", "Packaged drinking water", 5, "B", "N"),
    ("5050150000", "Cereal grains for export", 5, "C", "N"),
    ("5059690800", "Processed food products", 5, "B", "N"),
    ("8012150000", "Government fees and licences", 5, "D", "N"),
    ("8111150100", "Software development services", 5, "B", "N"),
    ("8411150100", "Accounting services", 5, "B", "N"),
]


@dataclass
class CodeDetail:
    """One code of a class (``dtlList`` entry)."""

    cd: str
    name: str
    sort_order: int
    user_code_1: str | None = None
    use: bool = True

    def as_json(self) -> dict[str, Any]:
        """The ``dtlList`` entry."""
        return {
            "cd": self.cd,
            "cdNm": self.name,
            "cdDesc": self.name,
            "useYn": "Y" if self.use else "N",
            "srtOrd": self.sort_order,
            "userDfnCd1": self.user_code_1,
            "userDfnCd2": None,
            "userDfnCd3": None,
        }


@dataclass
class CodeClass:
    """One code class (``clsList`` entry) and when it last changed."""

    cd_cls: str
    name: str
    modified: datetime
    details: dict[str, CodeDetail] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The ``clsList`` entry with its codes."""
        return {
            "cdCls": self.cd_cls,
            "cdClsNm": self.name,
            "cdClsDesc": None,
            "useYn": "Y",
            "userDfnNm1": "TaxRate" if self.cd_cls == TAX_TYPE else None,
            "userDfnNm2": None,
            "userDfnNm3": None,
            "dtlList": [detail.as_json() for detail in self.details.values()],
        }


@dataclass
class ItemClass:
    """One item class (``itemClsList`` entry)."""

    cd: str
    name: str
    level: int
    tax_type: str | None
    major_target: str | None
    modified: datetime

    def as_json(self) -> dict[str, Any]:
        """The ``itemClsList`` entry."""
        return {
            "itemClsCd": self.cd,
            "itemClsNm": self.name,
            "itemClsLvl": self.level,
            "taxTyCd": self.tax_type,
            "mjrTgYn": self.major_target,
            "useYn": "Y",
        }


class UnknownCodeClass(KeyError):
    """A code class the catalog does not have."""


class CodeCatalog:
    """The code lists and item classes, with when each changed (for ``lastReqDt``)."""

    def __init__(self) -> None:
        self.classes: dict[str, CodeClass] = {}
        for cd_cls, name, rows in _SEED:
            details = {
                row[0]: CodeDetail(row[0], row[1], order, row[2] if len(row) == 3 else None)
                for order, row in enumerate(rows, start=1)
            }
            self.classes[cd_cls] = CodeClass(cd_cls, name, CATALOG_PUBLISHED_AT, details)
        self.item_classes: dict[str, ItemClass] = {
            cd: ItemClass(cd, name, level, tax, major, CATALOG_PUBLISHED_AT)
            for cd, name, level, tax, major in _ITEM_CLASSES
        }

    def class_name(self, cd_cls: str) -> str:
        """``"07 (Payment Type)"``, for messages."""
        return f"{cd_cls} ({self.classes[cd_cls].name})"

    def is_code(self, cd_cls: str, cd: str) -> bool:
        """Whether ``cd`` is an active code of class ``cd_cls``."""
        detail = self.classes[cd_cls].details.get(cd)
        return detail is not None and detail.use

    def codes(self, cd_cls: str) -> list[str]:
        """The active codes of a class, in their order."""
        return [cd for cd, detail in self.classes[cd_cls].details.items() if detail.use]

    def tax_rates(self) -> dict[str, Decimal]:
        """Percentage per tax type, from ``userDfnCd1`` of class 04."""
        rates: dict[str, Decimal] = {}
        for cd, detail in self.classes[TAX_TYPE].details.items():
            try:
                rates[cd] = Decimal(detail.user_code_1 or "0")
            except InvalidOperation:  # a rate set to nonsense through the admin API
                rates[cd] = Decimal(0)
        return rates

    def classes_changed_since(self, since: datetime) -> list[dict[str, Any]]:
        """``clsList`` of the classes changed at or after ``since`` (same-second changes too)."""
        return [c.as_json() for c in self.classes.values() if c.modified >= since]

    def item_classes_changed_since(self, since: datetime) -> list[dict[str, Any]]:
        """``itemClsList`` of the item classes changed at or after ``since``."""
        return [c.as_json() for c in self.item_classes.values() if c.modified >= since]

    def is_item_class(self, cd: str) -> bool:
        """Whether ``cd`` is a known item class."""
        return cd in self.item_classes

    def upsert_code(
        self,
        cd_cls: str,
        cd: str,
        name: str,
        user_code_1: str | None,
        use: bool,
        now: datetime,
    ) -> CodeClass:
        """Add or change one code; its class counts as changed ``now``."""
        code_class = self.classes.get(cd_cls)
        if code_class is None:
            raise UnknownCodeClass(cd_cls)
        existing = code_class.details.get(cd)
        order = existing.sort_order if existing else len(code_class.details) + 1
        code_class.details[cd] = CodeDetail(cd, name, order, user_code_1, use)
        code_class.modified = now
        return code_class

    def upsert_item_class(
        self, cd: str, name: str, level: int, tax_type: str | None, now: datetime
    ) -> ItemClass:
        """Add or change one item class, changed ``now``."""
        item_class = ItemClass(cd, name, level, tax_type, "N" if tax_type else None, now)
        self.item_classes[cd] = item_class
        return item_class


def changed_since(records: Iterable[tuple[datetime, dict[str, Any]]], since: datetime) -> list[Any]:
    """The records changed at or after ``since``, in the order given."""
    return [record for modified, record in records if modified >= since]
