"""The sandbox's command line.

python -m sandboxes.trovotech serve [--host H] [--port P] [--webhook-url URL]
python -m sandboxes.trovotech state [--url URL]
python -m sandboxes.trovotech faults [--url URL] [--set NAME=VALUE ...] [--reset]
python -m sandboxes.trovotech deliveries [--url URL] [--event-type TYPE]

``--url`` defaults to ``TROVOTECH_BASE_URL`` (as ``kassa run`` sets it, ``/v1`` stripped) or the
sandbox's own port. ``--set`` values are JSON when they parse as JSON (``error_rate=0.5``,
``paths=["/token/mint"]``), text otherwise.
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

from sandboxes.trovotech.config import TrovoTechSandboxSettings

HTTP_TIMEOUT_S = 10.0
# How long a stopping server waits for in-flight requests (an injected timeout sleeps longer).
GRACEFUL_SHUTDOWN_S = 5


def default_url() -> str:
    """The sandbox's root: ``TROVOTECH_BASE_URL`` without ``/v1``, else its own port."""
    own = f"http://127.0.0.1:{TrovoTechSandboxSettings().port}"
    return (os.environ.get("TROVOTECH_BASE_URL") or own).rstrip("/").removesuffix("/v1")


def serve(host: str | None, port: int | None, webhook_url: str | None) -> int:
    """Run the sandbox in the foreground until SIGINT or SIGTERM."""
    from sandboxes.trovotech.app import create_app  # the server's imports, only when serving

    overrides: dict[str, Any] = {"host": host, "port": port, "webhook_url": webhook_url}
    settings = TrovoTechSandboxSettings(
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
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )
    server.run()
    return 0 if server.started else 1


def _request(method: str, url: str, body: Any = None) -> Any:
    try:
        reply = httpx.request(method, url, json=body, timeout=HTTP_TIMEOUT_S)
    except httpx.TransportError as exc:
        raise SystemExit(f"no TrovoTech sandbox at {url}: {exc}") from exc
    if reply.status_code >= 400:
        raise SystemExit(f"{method} {url} failed ({reply.status_code}): {reply.text}")
    return reply.json() if reply.content else None


def _parse_assignment(text: str) -> tuple[str, Any]:
    name, separator, raw = text.partition("=")
    if not separator:
        raise SystemExit(f"--set takes NAME=VALUE, not {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


def faults(url: str, assignments: Sequence[str], reset: bool) -> int:
    """Print the faults in force, after resetting and/or changing them."""
    answer = _request("GET", f"{url}/sandbox/faults")
    if reset:
        answer = _request("DELETE", f"{url}/sandbox/faults")
    if assignments:
        answer = _request(
            "POST", f"{url}/sandbox/faults", dict(map(_parse_assignment, assignments))
        )
    print(json.dumps(answer, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandboxes.trovotech", description="The local TrovoTech sandbox."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the sandbox")
    serve_cmd.add_argument("--host")
    serve_cmd.add_argument("--port", type=int)
    serve_cmd.add_argument("--webhook-url", help="where to deliver events ('' = nowhere)")
    state = commands.add_parser("state", help="print wallets, tokens, payouts and the ledger")
    state.add_argument("--url", default=None)
    fault = commands.add_parser("faults", help="print or change the injected faults")
    fault.add_argument("--url", default=None)
    fault.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    fault.add_argument("--reset", action="store_true", help="back to the configured faults")
    deliveries = commands.add_parser("deliveries", help="print webhook deliveries")
    deliveries.add_argument("--url", default=None)
    deliveries.add_argument("--event-type", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sandboxes.trovotech``."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port, args.webhook_url)
    url = (args.url or default_url()).rstrip("/").removesuffix("/v1")
    if args.command == "state":
        print(json.dumps(_request("GET", f"{url}/sandbox/state"), indent=2))
        return 0
    if args.command == "faults":
        return faults(url, args.set, args.reset)
    query = f"?event_type={args.event_type}" if args.event_type else ""
    print(json.dumps(_request("GET", f"{url}/sandbox/deliveries{query}"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
