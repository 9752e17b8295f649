"""Routes: JSON-RPC at ``POST /``, the faucet under ``/faucet``, health and readiness.

Handlers are thin: they parse, run one unit of work on the sandbox (under its lock) and shape
the reply. Faucet errors are problem+json like every Kassa API; JSON-RPC errors are JSON-RPC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import orjson
from fastapi import APIRouter, Depends, Request, status
from solders.pubkey import Pubkey
from starlette.responses import JSONResponse, Response

from sandboxes.solana_rpc import SANDBOX_USDC_MINT
from sandboxes.solana_rpc.chain import PreflightFailed
from sandboxes.solana_rpc.errors import transaction_error_message
from sandboxes.solana_rpc.faucet import Funding, SandboxMint, UnknownMint
from sandboxes.solana_rpc.rpc import JsonRpc
from sandboxes.solana_rpc.sandbox import Sandbox
from sandboxes.solana_rpc.schemas import (
    AdvanceRequest,
    ClockRead,
    FundRead,
    FundRequest,
    MintCreate,
    MintRead,
    SandboxState,
)
from sandboxes.solana_rpc.tokens import TOKEN_2022_PROGRAM, TOKEN_PROGRAM
from shared.errors import Conflict, NotFound, ServiceUnavailable, problem_responses

T = TypeVar("T")
_PROGRAMS = {"spl-token": TOKEN_PROGRAM, "spl-token-2022": TOKEN_2022_PROGRAM}


class SandboxStarting(ServiceUnavailable):
    slug = "sandbox-starting"
    title = "Sandbox starting"


class FaucetTransactionFailed(Conflict):
    slug = "faucet-transaction-failed"
    title = "The chain refused the faucet's transaction"


class UnknownFaucetMint(NotFound):
    slug = "unknown-faucet-mint"
    title = "Not a faucet mint"


def get_sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox | None = request.app.state.sandbox
    if sandbox is None:
        raise SandboxStarting("The sandbox is still starting.")
    return sandbox


SandboxDep = Annotated[Sandbox, Depends(get_sandbox)]

operations_router = APIRouter(tags=["operations"])
rpc_router = APIRouter(tags=["json-rpc"])
faucet_router = APIRouter(prefix="/faucet", tags=["faucet"])


@operations_router.get("/health", summary="Liveness: the process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@operations_router.get("/ready", summary="Readiness: the chain and its mints exist")
async def ready(request: Request) -> Response:
    if request.app.state.sandbox is None:
        return JSONResponse({"status": "not_ready"}, status_code=503)
    return JSONResponse({"status": "ready"})


@rpc_router.post(
    "/",
    summary="Solana JSON-RPC 2.0 (single requests and batches)",
    response_class=Response,
)
async def json_rpc(request: Request, sandbox: SandboxDep) -> Response:
    reply = await JsonRpc(sandbox).answer(await request.body())
    if reply is None:  # only notifications: nothing to answer
        return Response(status_code=status.HTTP_200_OK)
    return Response(orjson.dumps(reply), media_type="application/json")


def _mint_read(sandbox: Sandbox, mint: SandboxMint) -> MintRead:
    return MintRead(
        address=str(mint.address),
        label=mint.label,
        decimals=mint.decimals,
        program=mint.program_name,
        program_id=str(mint.program),
        supply=sandbox.faucet.supply(mint),
    )


async def _on_chain(sandbox: Sandbox, work: Callable[[], T]) -> T:
    """Run faucet work; the chain's refusals become problem+json."""
    try:
        return await sandbox.run(work)
    except UnknownMint as exc:
        raise UnknownFaucetMint(f"{exc} is not a mint this faucet controls.") from exc
    except PreflightFailed as failure:
        simulation = failure.simulation
        message = transaction_error_message(simulation.err) if simulation.err else "refused"
        raise FaucetTransactionFailed(message, logs=simulation.logs) from failure


@faucet_router.post(
    "/mints",
    status_code=status.HTTP_201_CREATED,
    summary="Create a mint the faucet controls",
    responses=problem_responses(FaucetTransactionFailed),
)
async def create_mint(body: MintCreate, sandbox: SandboxDep) -> MintRead:
    program = _PROGRAMS[body.program]
    mint = await _on_chain(
        sandbox, lambda: sandbox.faucet.create_mint(body.decimals, program, body.label)
    )
    return await sandbox.run(lambda: _mint_read(sandbox, mint))


def _funding_read(funding: Funding) -> FundRead:
    mint = funding.mint
    return FundRead(
        signature=str(funding.signature),
        owner=str(funding.owner),
        lamports=funding.lamports,
        mint=str(mint.address) if mint else None,
        token_program=mint.program_name if mint else None,
        token_account=str(funding.token_account) if funding.token_account else None,
        amount=funding.amount,
    )


@faucet_router.post(
    "/fund",
    summary="Send SOL and/or tokens to a wallet (creating its token account)",
    responses=problem_responses(UnknownFaucetMint, FaucetTransactionFailed),
)
async def fund(body: FundRequest, sandbox: SandboxDep) -> FundRead:
    owner = Pubkey.from_string(body.owner)
    mint_text = body.mint or (SANDBOX_USDC_MINT if body.amount else None)
    mint = Pubkey.from_string(mint_text) if mint_text else None
    funding = await _on_chain(
        sandbox, lambda: sandbox.faucet.fund(owner, body.lamports, mint, body.amount)
    )
    return _funding_read(funding)


def _advance(sandbox: Sandbox, slots: int) -> ClockRead:
    chain = sandbox.chain
    chain.advance(slots)
    return ClockRead(
        slot=chain.slot,
        blockhash=str(chain.blockhash_at(chain.slot)),
        last_valid_block_height=chain.last_valid_block_height(chain.slot),
    )


@faucet_router.post("/advance", summary="Let slots pass at once (tests and demos)")
async def advance(body: AdvanceRequest, sandbox: SandboxDep) -> ClockRead:
    return await sandbox.run(lambda: _advance(sandbox, body.slots))


def _state(sandbox: Sandbox) -> SandboxState:
    chain = sandbox.chain
    treasury = chain.account(chain.treasury.pubkey())
    return SandboxState(
        slot=chain.slot,
        genesis_hash=str(chain.genesis_hash),
        treasury=str(chain.treasury.pubkey()),
        treasury_lamports=treasury.lamports if treasury is not None else 0,
        mint_authority=str(sandbox.faucet.mint_authority),
        mints=[_mint_read(sandbox, mint) for mint in sandbox.faucet.mints],
    )


@faucet_router.get("/state", summary="Slot, treasury, mint authority and mints")
async def state(sandbox: SandboxDep) -> SandboxState:
    return await sandbox.run(lambda: _state(sandbox))
