"""Device initialisation (``selectInitOsdcInfo``; VSCU ``/initializer/selectInitInfo``).

An approved serial initialised by a taxpayer's branch answers 000 with ``data.info`` (taxpayer,
branch, ``dvcId``, ``sdcId``, ``mrcNo`` and the ``cmcKey``). Asked again it answers 902 with
``data: null``: the key is given once, so the client must keep it from the first reply.
Unknown serials, serials registered for another taxpayer, and OSCU serials on the VSCU path
answer 901; a VSCU serial on the OSCU path answers 903. A branch has one VSCU: a second VSCU
serial for the same branch answers 902.
"""

from __future__ import annotations

from typing import Any

from sandboxes.etims.context import Call, Profile
from sandboxes.etims.envelope import Reply, ResultCode, kra_date
from sandboxes.etims.state import Device, DeviceKind


def select_init_info(call: Call) -> Reply:
    """Initialise a device and hand out its cmcKey, once."""
    body = call.body
    tin = body.pin("tin")
    bhf_id = body.branch("bhfId")
    serial = body.required_text("dvcSrlNo", 100)
    assert tin is not None
    assert bhf_id is not None
    state = call.state
    device = state.approved_device(serial)
    if device is None:
        return Reply(ResultCode.INVALID_DEVICE, message=f"It is not valid device: {serial}")
    if call.profile is Profile.OSCU and device.kind is DeviceKind.VSCU:
        return Reply(ResultCode.ONLY_OSCU)
    if call.profile is Profile.VSCU and device.kind is DeviceKind.OSCU:
        return Reply(
            ResultCode.INVALID_DEVICE, message=f"It is not valid device: {serial} is an OSCU"
        )
    if not _belongs_to(device, tin, bhf_id):
        return Reply(
            ResultCode.INVALID_DEVICE,
            message=f"It is not valid device: {serial} is registered for another branch",
        )
    if device.initialized:
        return Reply(ResultCode.DEVICE_INSTALLED)
    if device.kind is DeviceKind.VSCU and state.branch_vscu(tin, bhf_id) is not None:
        return Reply(
            ResultCode.DEVICE_INSTALLED,
            message=f"This device is installed: branch {bhf_id} of {tin} already has a VSCU",
        )
    state.initialize(device, tin, bhf_id, call.now)
    return Reply.ok({"info": device_info(call, device)})


def _belongs_to(device: Device, tin: str, bhf_id: str) -> bool:
    if device.tin is not None and device.tin != tin:
        return False
    return device.bhf_id is None or device.bhf_id == bhf_id


def device_info(call: Call, device: Device) -> dict[str, Any]:
    """``data.info`` of a successful initialisation."""
    assert device.tin is not None
    assert device.bhf_id is not None
    assert device.numbers is not None
    head_office = device.bhf_id == "00"
    return {
        "tin": device.tin,
        "taxprNm": call.state.taxpayer_name(device.tin),
        "bsnsActv": "SANDBOX TRADING",
        "bhfId": device.bhf_id,
        "bhfNm": "Headquarter" if head_office else f"Branch {device.bhf_id}",
        "bhfOpenDt": kra_date(call.now.date()),
        "prvncNm": "NAIROBI CITY",
        "dstrtNm": "WESTLANDS",
        "sctrNm": "WESTLANDS",
        "locDesc": "Kassa eTIMS sandbox",
        "hqYn": "Y" if head_office else "N",
        "mgrNm": "Sandbox Manager",
        "mgrTelNo": "0700000000",
        "mgrEmail": "manager@sandbox.invalid",
        "dvcId": device.numbers.dvc_id,
        "sdcId": device.numbers.sdc_id,
        "mrcNo": device.numbers.mrc_no,
        "cmcKey": device.cmc_key,
    }
