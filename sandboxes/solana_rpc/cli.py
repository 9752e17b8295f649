"""The sandbox's command line.

python -m sandboxes.solana_rpc serve [--host H] [--port P] [--slot-ms N]
python -m sandboxes.solana_rpc demo-wallet [--url URL] [--lamports N] [--amount N] [--mint M]
python -m sandboxes.solana_rpc state [--url URL]
python -m sandboxes.solana_rpc advance SLOTS [--url URL]

``demo-wallet`` makes a new keypair, has a running sandbox fund it (SOL and sandbox USDC by
default) and prints its address and secret key: a wallet for demos and for the x402 client. The
keys are sandbox keys; never send real funds to them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import uvicorn
from solders.keypair import Keypair

from sandboxes.solana_rpc import SANDBOX_USDC_DECIMALS, SANDBOX_USDC_MINT
from sandboxes.solana_rpc.config import SandboxSettings
from sandboxes.solana_rpc.tokens import ui_amount_string

LAMPORTS_PER_SOL = 1_000_000_000
DEFAULT_WALLET_LAMPORTS = 2 * LAMPORTS_PER_SOL
DEFAULT_WALLET_AMOUNT = 100 * 10**SANDBOX_USDC_DECIMALS  # 100 sandbox USDC
HTTP_TIMEOUT_S = 10.0


def default_url() -> str:
    """``SOLANA_RPC_URL`` if set (as under ``kassa run``), else the sandbox's own port."""
    return os.environ.get("SOLANA_RPC_URL") or f"http://127.0.0.1:{SandboxSettings().port}"


def serve(host: str | None, port: int | None, slot_ms: int | None) -> int:
    """Run the sandbox in the foreground until SIGINT or SIGTERM."""
    from sandboxes.solana_rpc.app import create_app  # the server's imports, only when serving

    overrides: dict[str, Any] = {"host": host, "port": port, "slot_ms": slot_ms}
    settings = SandboxSettings(
        **{key: value for key, value in overrides.items() if value is not None}
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
        )
    )
    server.run()
    return 0 if server.started else 1


def _request(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        reply = httpx.request(method, url, json=body, timeout=HTTP_TIMEOUT_S)
    except httpx.TransportError as exc:
        raise SystemExit(f"no Solana sandbox at {url}: {exc}") from exc
    if reply.status_code >= 400:
        raise SystemExit(f"{method} {url} failed ({reply.status_code}): {reply.text}")
    answer: dict[str, Any] = reply.json()
    return answer


def demo_wallet(url: str, lamports: int, amount: int, mint: str, as_json: bool) -> int:
    """Fund a fresh keypair and print it."""
    keypair = Keypair()
    body = {"owner": str(keypair.pubkey()), "lamports": lamports, "mint": mint, "amount": amount}
    funding = _request("POST", f"{url.rstrip('/')}/faucet/fund", body)
    wallet = {
        "address": str(keypair.pubkey()),
        "secret_key_base58": str(keypair),
        "keypair_json": list(bytes(keypair)),
        "lamports": lamports,
        "mint": mint,
        "token_account": funding["token_account"],
        "amount": amount,
        "rpc_url": url,
    }
    if as_json:
        print(json.dumps(wallet))
        return 0
    print("Sandbox wallet (funded on the local Solana sandbox only; never use it elsewhere):")
    print(f"  address        {wallet['address']}")
    print(f"  secret key     {wallet['secret_key_base58']}")
    print(f"  keypair file   {json.dumps(wallet['keypair_json'])}")
    print(f"  SOL            {ui_amount_string(lamports, 9)}")
    print(f"  tokens         {ui_amount_string(amount, SANDBOX_USDC_DECIMALS)} of mint {mint}")
    print(f"  token account  {wallet['token_account']}")
    print(f"  RPC URL        {url}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandboxes.solana_rpc", description="The local Solana sandbox."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the sandbox (JSON-RPC and faucet)")
    serve_cmd.add_argument("--host")
    serve_cmd.add_argument("--port", type=int)
    serve_cmd.add_argument("--slot-ms", type=int, help="milliseconds per slot; 0 stops the clock")
    wallet = commands.add_parser("demo-wallet", help="print a new funded keypair")
    wallet.add_argument("--url", default=None, help="the sandbox (default: SOLANA_RPC_URL)")
    wallet.add_argument("--lamports", type=int, default=DEFAULT_WALLET_LAMPORTS)
    wallet.add_argument("--amount", type=int, default=DEFAULT_WALLET_AMOUNT, help="base units")
    wallet.add_argument("--mint", default=SANDBOX_USDC_MINT)
    wallet.add_argument("--json", action="store_true", help="one JSON object instead of text")
    state = commands.add_parser("state", help="print the sandbox's slot, treasury and mints")
    state.add_argument("--url", default=None)
    advance = commands.add_parser("advance", help="let slots pass at once")
    advance.add_argument("slots", type=int)
    advance.add_argument("--url", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sandboxes.solana_rpc``."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port, args.slot_ms)
    url = (args.url or default_url()).rstrip("/")
    if args.command == "demo-wallet":
        return demo_wallet(url, args.lamports, args.amount, args.mint, args.json)
    if args.command == "state":
        print(json.dumps(_request("GET", f"{url}/faucet/state"), indent=2))
        return 0
    print(json.dumps(_request("POST", f"{url}/faucet/advance", {"slots": args.slots})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
