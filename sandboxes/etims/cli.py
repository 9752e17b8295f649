"""The sandbox's command line.

python -m sandboxes.etims serve [--host H] [--port P] [--latency-ms N]
python -m sandboxes.etims state [--url URL]
python -m sandboxes.etims faults [--latency-ms N] [--hang-ms N] [--rule KIND[:COUNT[:OPERATION]]]...
python -m sandboxes.etims faults --clear
python -m sandboxes.etims register-device SERIAL [--vscu] [--tin PIN] [--bhf-id NN]
python -m sandboxes.etims reset

``--rule 999:3:saveTrnsSalesOsdc`` answers 999 to the next three sales; ``--rule
timeout_after_commit:1`` stores the next call's result and replies late.
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

from sandboxes.etims.config import FAULT_KINDS, EtimsSandboxSettings

HTTP_TIMEOUT_S = 10.0


def default_url() -> str:
    """``KRA_BASE_URL`` if set (as under ``kassa run``), else the sandbox's own port."""
    return os.environ.get("KRA_BASE_URL") or f"http://127.0.0.1:{EtimsSandboxSettings().port}"


def serve(host: str | None, port: int | None, latency_ms: int | None) -> int:
    """Run the sandbox in the foreground until SIGINT or SIGTERM."""
    from sandboxes.etims.app import create_app  # the server's imports, only when serving

    overrides: dict[str, Any] = {"host": host, "port": port, "latency_ms": latency_ms}
    settings = EtimsSandboxSettings(
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


def _request(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    try:
        reply = httpx.request(method, url, json=body, timeout=HTTP_TIMEOUT_S)
    except httpx.TransportError as exc:
        raise SystemExit(f"no eTIMS sandbox at {url}: {exc}") from exc
    if reply.status_code >= 400:
        raise SystemExit(f"{method} {url} failed ({reply.status_code}): {reply.text}")
    return reply.json()


def parse_rule(text: str) -> dict[str, Any]:
    """``KIND[:COUNT[:OPERATION]]`` as a fault rule."""
    kind, _, rest = text.partition(":")
    if kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
    count, _, operation = rest.partition(":")
    rule: dict[str, Any] = {"kind": kind, "count": int(count) if count else None}
    if operation:
        rule["operations"] = [operation]
    return rule


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandboxes.etims", description="The local KRA eTIMS sandbox."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the sandbox")
    serve_cmd.add_argument("--host")
    serve_cmd.add_argument("--port", type=int)
    serve_cmd.add_argument("--latency-ms", type=int)
    state = commands.add_parser("state", help="print devices, branches, faults and counters")
    state.add_argument("--url", default=None, help="the sandbox (default: KRA_BASE_URL)")
    faults = commands.add_parser("faults", help="replace (or --clear) the fault plan")
    faults.add_argument("--url", default=None)
    faults.add_argument("--latency-ms", type=int, default=0)
    faults.add_argument("--hang-ms", type=int, default=None)
    faults.add_argument("--rule", type=parse_rule, action="append", default=[])
    faults.add_argument("--clear", action="store_true")
    device = commands.add_parser("register-device", help="approve a device serial")
    device.add_argument("serial")
    device.add_argument("--vscu", action="store_true")
    device.add_argument("--tin")
    device.add_argument("--bhf-id")
    device.add_argument("--url", default=None)
    reset = commands.add_parser("reset", help="forget everything")
    reset.add_argument("--url", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sandboxes.etims``."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port, args.latency_ms)
    url = (args.url or default_url()).rstrip("/")
    if args.command == "state":
        answer = _request("GET", f"{url}/sandbox/state")
    elif args.command == "faults" and args.clear:
        answer = _request("DELETE", f"{url}/sandbox/faults")
    elif args.command == "faults":
        plan = {"latency_ms": args.latency_ms, "hang_ms": args.hang_ms, "rules": args.rule}
        answer = _request("POST", f"{url}/sandbox/faults", plan)
    elif args.command == "register-device":
        body = {
            "serial": args.serial,
            "kind": "VSCU" if args.vscu else "OSCU",
            "tin": args.tin,
            "bhf_id": args.bhf_id,
        }
        answer = _request("POST", f"{url}/sandbox/devices", body)
    else:
        answer = _request("POST", f"{url}/sandbox/reset")
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
