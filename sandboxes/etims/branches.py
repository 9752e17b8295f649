"""Branch registers: ``saveBhfCustomer``, ``saveBhfUser`` and ``saveBhfInsurance``.

Checked for types and lengths and kept per branch (by customer number, user id and insurer
code; a repeat changes the entry). A user's password is checked but never kept.
"""

from __future__ import annotations

from decimal import Decimal

from sandboxes.etims.context import Call
from sandboxes.etims.envelope import Reply
from sandboxes.etims.state import Record


def save_branch_customer(call: Call) -> Reply:
    """Register or change a customer of the branch."""
    body = call.body
    number = body.required_text("custNo", 9)
    body.pin("custTin")
    body.required_text("custNm", 60)
    body.text("adrs", 300, required=False)
    body.text("telNo", 20, required=False)
    body.text("email", 50, required=False)
    body.text("faxNo", 20, required=False)
    body.flag("useYn")
    body.text("remark", 1000, required=False)
    body.user()
    call.branch.customers[number] = Record(dict(body.raw), call.now)
    return Reply.ok()


def save_branch_user(call: Call) -> Reply:
    """Register or change a user of the branch (without keeping the password)."""
    body = call.body
    user_id = body.required_text("userId", 20)
    body.required_text("userNm", 60)
    body.required_text("pwd", 255)
    body.text("adrs", 200, required=False)
    body.text("cntc", 20, required=False)
    body.text("authCd", 100, required=False)
    body.text("remark", 2000, required=False)
    body.flag("useYn")
    body.user()
    kept = {key: value for key, value in body.raw.items() if key != "pwd"}
    call.branch.users[user_id] = Record(kept, call.now)
    return Reply.ok()


def save_branch_insurance(call: Call) -> Reply:
    """Register or change an insurer the branch works with."""
    body = call.body
    code = body.required_text("isrccCd", 10)
    body.required_text("isrccNm", 100)
    body.required_number("isrcRt", 5, 2, maximum=Decimal(100))
    body.flag("useYn")
    body.user()
    call.branch.insurances[code] = Record(dict(body.raw), call.now)
    return Reply.ok()
