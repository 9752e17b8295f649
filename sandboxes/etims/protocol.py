"""The eTIMS operations and their paths: KRA's OSCU API and a taxpayer's VSCU server.

OSCU paths are KRA's (``{base}/saveTrnsSalesOsdc``, base ``.../etims-api`` at KRA, the
sandbox's root here); the caller is identified by the ``tin``, ``bhfId`` and ``cmcKey``
headers. VSCU paths are those of KRA's VSCU server (``/trnsSales/saveSales``, ...), which
keeps the key itself: the caller is identified by ``tin`` and ``bhfId`` in the body (or, as a
convenience, in headers). Bodies and replies are the same JSON on both.

``selectInvoiceDetails`` has no published VSCU path; the sandbox serves it at
``/trnsSales/selectInvoiceDetails``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandboxes.etims import branches, initialization, items, purchases, reference, sales, stock
from sandboxes.etims.context import Call, Profile
from sandboxes.etims.envelope import Reply

INIT_OPERATION = "selectInitOsdcInfo"


@dataclass(frozen=True)
class Operation:
    """One eTIMS operation: its name (the OSCU path), its VSCU path and its handler."""

    name: str
    vscu_path: str
    handler: Callable[[Call], Reply]
    summary: str

    @property
    def oscu_path(self) -> str:
        """``/`` + the name, as at KRA."""
        return f"/{self.name}"

    def path(self, profile: Profile) -> str:
        """The path of this operation on a profile."""
        return self.oscu_path if profile is Profile.OSCU else self.vscu_path

    @property
    def identifies_device(self) -> bool:
        """Whether the caller must be an initialised device (all but initialisation)."""
        return self.name != INIT_OPERATION


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        INIT_OPERATION,
        "/initializer/selectInitInfo",
        initialization.select_init_info,
        "Initialise a device: 000 with info and the cmcKey once, then 902",
    ),
    Operation(
        "selectCodeList",
        "/code/selectCodes",
        reference.select_code_list,
        "Code lists changed since lastReqDt (tax types with rates, units, ...)",
    ),
    Operation(
        "selectItemClsList",
        "/itemClass/selectItemsClass",
        reference.select_item_classes,
        "Item classes changed since lastReqDt",
    ),
    Operation(
        "selectCustomer",
        "/customers/selectCustomer",
        reference.select_customer,
        "A taxpayer by PIN (custmTin)",
    ),
    Operation(
        "selectBhfList",
        "/branches/selectBranches",
        reference.select_branches,
        "The caller's branches",
    ),
    Operation(
        "selectNoticeList",
        "/notices/selectNotices",
        reference.select_notices,
        "KRA notices since lastReqDt",
    ),
    Operation(
        "saveBhfCustomer",
        "/branches/saveBrancheCustomers",
        branches.save_branch_customer,
        "Register a customer of the branch",
    ),
    Operation(
        "saveBhfUser",
        "/branches/saveBrancheUsers",
        branches.save_branch_user,
        "Register a user of the branch",
    ),
    Operation(
        "saveBhfInsurance",
        "/branches/saveBrancheInsurances",
        branches.save_branch_insurance,
        "Register an insurer of the branch",
    ),
    Operation("saveItem", "/items/saveItems", items.save_item, "Register or change an item"),
    Operation(
        "selectItemList",
        "/items/selectItems",
        items.select_items,
        "The branch's items changed since lastReqDt",
    ),
    Operation(
        "saveItemComposition",
        "/items/saveItemComposition",
        items.save_item_composition,
        "Record an item's composition",
    ),
    Operation(
        "selectImportItemList",
        "/imports/selectImportItems",
        items.select_import_items,
        "Customs-declared imports (none in the sandbox: 001)",
    ),
    Operation(
        "updateImportItem",
        "/imports/updateImportItems",
        items.update_import_item,
        "Accept or reject an imported item (none in the sandbox: 910)",
    ),
    Operation(
        "saveTrnsSalesOsdc",
        "/trnsSales/saveSales",
        sales.save_sale,
        "Declare a sale or credit note: 000 with the receipt, 910 naming a bad field, 994",
    ),
    Operation(
        "selectInvoiceDetails",
        "/trnsSales/selectInvoiceDetails",
        sales.select_invoice_details,
        "The accepted sale with this invcNo and its receipt (001 if none)",
    ),
    Operation(
        "selectTrnsPurchaseSalesList",
        "/trnsPurchase/selectTrnsPurchaseSales",
        purchases.select_purchase_sales,
        "Sales other taxpayers declared to the caller's PIN since lastReqDt",
    ),
    Operation(
        "insertTrnsPurchase",
        "/trnsPurchase/savePurchases",
        purchases.save_purchase,
        "Declare a purchase",
    ),
    Operation(
        "insertStockIO",
        "/stock/saveStockItems",
        stock.save_stock_io,
        "Declare a stock movement in or out",
    ),
    Operation(
        "saveStockMaster",
        "/stockMaster/saveStockMaster",
        stock.save_stock_master,
        "Report an item's remaining quantity (after a movement of it)",
    ),
    Operation(
        "selectStockMoveList",
        "/stock/selectStockItems",
        stock.select_stock_moves,
        "The branch's stock movements since lastReqDt",
    ),
)

OPERATION_NAMES = frozenset(operation.name for operation in OPERATIONS)
