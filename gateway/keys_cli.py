"""``kassa keys``: create, list, rotate and revoke API keys from an operator's shell.

kassa keys create --owner acme --name ci --scope read,ledger:write [--env live|test]
                  [--expires-in 30d] [--tier default] [--service custody] [--json]
kassa keys list [--owner acme] [--state active|expired|revoked] [--json]
kassa keys rotate KEY_ID [--overlap 1h] [--json]
kassa keys revoke KEY_ID [--json]

It works directly on the gateway's database (settings from the environment, derived exactly as
``kassa migrate`` derives them), through the same service functions as the admin API, and
commits itself. After a rotation or revocation it tells running gateways through Redis when
one is configured; otherwise they notice within GATEWAY_KEY_CACHE_TTL_S seconds.

Exit status: 0 done, 1 refused (unknown key, not rotatable, database error), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.app import load_settings
from gateway.config import GatewaySettings
from gateway.key_cache import KeyCache
from gateway.models import ApiKey
from gateway.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRead,
    ApiKeyRotate,
    ApiKeyRotated,
    KeyState,
)
from gateway.service import ApiKeySecretMissing, api_key_secret, api_key_service
from shared.db import Database
from shared.devrun import database_environment
from shared.errors import KassaError
from shared.logging import configure_logging

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
ACTOR = "cli"
PAGE_SIZE = 200
# Request fields as the operator typed them, for validation messages.
OPTION_OF_FIELD = {
    "owner": "--owner",
    "name": "--name",
    "environment": "--env",
    "scopes": "--scope",
    "service": "--service",
    "rate_limit_tier": "--tier",
    "expires_at": "--expires-in",
    "overlap_s": "--overlap",
}
_DURATION = re.compile(r"^(\d+)([smhdw]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
SHOWN_ONCE = "shown once; store it now, Kassa keeps only a hash"


class UsageError(Exception):
    """The command cannot run as given (configuration or arguments)."""


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``3600s`` or plain seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 30d, 12h, 15m or 3600s, got {text!r}"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def build_parser() -> argparse.ArgumentParser:
    """The ``kassa keys`` command line."""
    parser = argparse.ArgumentParser(
        prog="kassa keys",
        description="Create, list, rotate and revoke API keys in the gateway's database.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="issue a key (printed once)")
    create.add_argument("--owner", required=True, help="who the key belongs to")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        required=True,
        help="read, write, admin or <service>:<action>; repeatable or a comma list",
    )
    create.add_argument("--env", choices=("live", "test"), default="live")
    create.add_argument("--expires-in", type=parse_duration, help="e.g. 30d, 12h, 3600s")
    create.add_argument("--tier", default="default", help="rate-limit tier")
    create.add_argument("--service", help="the Kassa service this key identifies")
    listing = actions.add_parser("list", help="list keys, newest first")
    listing.add_argument("--owner", help="only this owner's keys")
    listing.add_argument("--state", choices=[state.value for state in KeyState])
    rotate = actions.add_parser("rotate", help="issue a successor; the old key expires later")
    rotate.add_argument("key_id", metavar="KEY_ID")
    rotate.add_argument(
        "--overlap",
        type=parse_duration,
        help="how long the old key keeps working (default GATEWAY_KEY_ROTATION_OVERLAP_S)",
    )
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", metavar="KEY_ID")
    for action in (create, listing, rotate, revoke):
        action.add_argument("--json", action="store_true", help="print JSON for machines")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``kassa keys`` with ``argv`` (the words after ``keys``); returns the exit status."""
    args = build_parser().parse_args(argv)
    _logs_to_stderr()
    try:
        settings = gateway_settings()
        secret = api_key_secret(settings)
        run = _ACTIONS[args.action]
        return asyncio.run(run(args, settings, secret))
    except (UsageError, ApiKeySecretMissing) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ValidationError as exc:
        return _fail(_validation_message(exc), EXIT_USAGE)
    except KassaError as exc:
        return _fail(exc.detail or exc.title, EXIT_REFUSED)
    except SQLAlchemyError as exc:
        return _fail(
            f"database error ({type(exc).__name__}: {str(exc).splitlines()[0]}); is the "
            "gateway database reachable and migrated (kassa migrate gateway)?",
            EXIT_REFUSED,
        )


def gateway_settings() -> GatewaySettings:
    """The gateway's settings, its database derived exactly as ``kassa migrate`` does."""
    var_dir = Path(os.environ.get("KASSA_VAR_DIR", "var")).resolve()
    os.environ.update(database_environment(os.environ, var_dir))
    try:
        return load_settings()
    except ValidationError as exc:
        raise UsageError(f"invalid gateway configuration: {exc}") from exc


def _logs_to_stderr() -> None:
    # Stdout carries the command's output (and --json); log lines must not mix into it.
    configure_logging("kassa-keys", level="WARNING", json=False)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


def _fail(message: str, status: int) -> int:
    print(f"kassa keys: {message}", file=sys.stderr)
    return status


def _validation_message(error: ValidationError) -> str:
    lines = ["invalid input:"]
    for problem in error.errors():
        location = [str(part) for part in problem["loc"]]
        option = OPTION_OF_FIELD.get(location[0], location[0]) if location else "input"
        lines.append(f"  {option}: {problem['msg']}")
    return "\n".join(lines)


@asynccontextmanager
async def _transaction(settings: GatewaySettings) -> AsyncIterator[AsyncSession]:
    """One transaction on the gateway's database, committed when the block ends cleanly."""
    database = Database(settings.database_url, app_name="gateway")
    try:
        async with database.session() as session, session.begin():
            yield session
    finally:
        await database.dispose()


async def _create(args: argparse.Namespace, settings: GatewaySettings, secret: bytes) -> int:
    spec = ApiKeyCreate(
        owner=args.owner,
        name=args.name,
        environment=args.env,
        scopes=[part.strip() for item in args.scopes for part in item.split(",") if part.strip()],
        service=args.service,
        rate_limit_tier=args.tier,
        expires_at=datetime.now(UTC) + args.expires_in if args.expires_in else None,
    )
    async with _transaction(settings) as session:
        issued = await api_key_service.create(session, secret, spec, actor=ACTOR)
    created = ApiKeyCreated.of(issued.api_key, issued.key)
    if args.json:
        return _print_json(created)
    print(f"API key ({SHOWN_ONCE}):\n  {created.key}\n")
    print(_record_text(created.api_key))
    return EXIT_OK


async def _list(args: argparse.Namespace, settings: GatewaySettings, _secret: bytes) -> int:
    state = KeyState(args.state) if args.state else None
    keys: list[ApiKey] = []
    cursor: str | None = None
    async with _transaction(settings) as session:
        while True:
            page = await api_key_service.list(
                session, limit=PAGE_SIZE, cursor=cursor, owner=args.owner, state=state
            )
            keys.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    listing = ApiKeyList(
        items=[ApiKeyRead.model_validate(api_key) for api_key in keys], next_cursor=None
    )
    if args.json:
        return _print_json(listing)
    print(_table(listing.items))
    return EXIT_OK


async def _rotate(args: argparse.Namespace, settings: GatewaySettings, secret: bytes) -> int:
    overlap_s = int(args.overlap.total_seconds()) if args.overlap is not None else None
    overlap = ApiKeyRotate(overlap_s=overlap_s).overlap(settings.key_rotation_overlap_s)
    async with _transaction(settings) as session:
        rotation = await api_key_service.rotate(session, secret, args.key_id, overlap, actor=ACTOR)
    await _tell_gateways(settings, rotation.stale_key_hashes)
    rotated = ApiKeyRotated.of_rotation(
        rotation.issued.api_key, rotation.issued.key, rotation.previous
    )
    if args.json:
        return _print_json(rotated)
    print(f"New API key ({SHOWN_ONCE}):\n  {rotated.key}\n")
    print(_record_text(rotated.api_key))
    print(
        f"\nThe old key {rotated.previous.id} ({rotated.previous.display_prefix}…) keeps "
        f"working until {_when(rotated.previous.expires_at)}."
    )
    return EXIT_OK


async def _revoke(args: argparse.Namespace, settings: GatewaySettings, _secret: bytes) -> int:
    async with _transaction(settings) as session:
        revocation = await api_key_service.revoke(session, args.key_id, actor=ACTOR)
    await _tell_gateways(settings, revocation.stale_key_hashes)
    record = ApiKeyRead.model_validate(revocation.api_key)
    if args.json:
        return _print_json(record)
    verb = "Revoked" if revocation.newly_revoked else "Already revoked:"
    print(f"{verb} {record.id} ({record.display_prefix}…) at {_when(record.revoked_at)}.\n")
    print(_record_text(record))
    return EXIT_OK


async def _tell_gateways(settings: GatewaySettings, key_hashes: Sequence[str]) -> None:
    """Drop the keys from running gateways' caches through Redis, or say when they will."""
    notice = (
        "running gateways will notice within "
        f"{settings.key_cache_ttl_s:g} s (GATEWAY_KEY_CACHE_TTL_S)."
    )
    if not settings.redis_url:
        print(f"No Redis configured: {notice}", file=sys.stderr)
        return
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await redis.ping()
        await KeyCache(ttl_s=settings.key_cache_ttl_s, redis=redis).invalidate(key_hashes)
    except (RedisError, OSError) as exc:
        print(f"Redis unreachable ({exc}): {notice}", file=sys.stderr)
    finally:
        await redis.aclose()


def _print_json(model: BaseModel) -> int:
    print(model.model_dump_json(indent=2))
    return EXIT_OK


def _when(moment: datetime | None, empty: str = "-") -> str:
    if moment is None:
        return empty
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _record_text(record: ApiKeyRead) -> str:
    rows = [
        ("id", record.id),
        ("display prefix", record.display_prefix),
        ("owner", record.owner),
        ("name", record.name),
        ("environment", record.environment),
        ("scopes", " ".join(record.scopes)),
        ("service", record.service or "-"),
        ("tier", record.rate_limit_tier),
        ("state", record.state.value),
        ("created at", _when(record.created_at)),
        ("expires at", _when(record.expires_at, "never")),
        ("revoked at", _when(record.revoked_at)),
        ("last used at", _when(record.last_used_at, "never")),
        ("replaced by", record.replaced_by or "-"),
    ]
    return "\n".join(f"{label:<15} {value}" for label, value in rows)


def _table(records: Sequence[ApiKeyRead]) -> str:
    if not records:
        return "No API keys."
    header = ("ID", "PREFIX", "OWNER", "NAME", "ENV", "STATE", "SCOPES", "EXPIRES", "LAST USED")
    rows = [header] + [
        (
            record.id,
            record.display_prefix,
            record.owner,
            record.name,
            record.environment,
            record.state.value,
            ",".join(record.scopes),
            _when(record.expires_at, "never"),
            _when(record.last_used_at, "never"),
        )
        for record in records
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


Action = Callable[[argparse.Namespace, GatewaySettings, bytes], Coroutine[Any, Any, int]]
_ACTIONS: dict[str, Action] = {
    "create": _create,
    "list": _list,
    "rotate": _rotate,
    "revoke": _revoke,
}
