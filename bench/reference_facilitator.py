"""The peer for ``bench.facilitator``: the x402 package's own facilitator, served as its FastAPI
example serves it (``x402Facilitator`` with the SVM exact scheme, ``/verify``, ``/settle``,
``/supported``), pointed at the same Solana sandbox as Kassa.

Run: ``REFERENCE_FEE_PAYER=<base58 secret> SOLANA_RPC_URL=…``
``uvicorn bench.reference_facilitator:app``
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from solders.keypair import Keypair
from x402 import x402Facilitator
from x402.mechanisms.svm import FacilitatorKeypairSigner
from x402.mechanisms.svm.exact import register_exact_svm_facilitator
from x402.schemas import PaymentPayload, PaymentRequirements

DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"

signer = FacilitatorKeypairSigner(
    Keypair.from_base58_string(os.environ["REFERENCE_FEE_PAYER"]),
    rpc_url=os.environ["SOLANA_RPC_URL"],
)
facilitator = register_exact_svm_facilitator(x402Facilitator(), signer, networks=DEVNET)
app = FastAPI(title="x402 reference facilitator (bench peer)")


class FacilitatorRequest(BaseModel):
    x402Version: int  # noqa: N815 - the protocol's spelling
    paymentPayload: dict[str, Any]  # noqa: N815
    paymentRequirements: dict[str, Any]  # noqa: N815


@app.post("/verify")
async def verify(body: FacilitatorRequest) -> dict[str, Any]:
    try:
        result = await facilitator.verify(
            PaymentPayload.model_validate(body.paymentPayload),
            PaymentRequirements.model_validate(body.paymentRequirements),
        )
    except Exception as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return result.model_dump(by_alias=True, exclude_none=True)


@app.post("/settle")
async def settle(body: FacilitatorRequest) -> dict[str, Any]:
    try:
        result = await facilitator.settle(
            PaymentPayload.model_validate(body.paymentPayload),
            PaymentRequirements.model_validate(body.paymentRequirements),
        )
    except Exception as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return result.model_dump(by_alias=True, exclude_none=True)


@app.get("/supported")
async def supported() -> dict[str, Any]:
    return facilitator.get_supported().model_dump(by_alias=True, exclude_none=True)
