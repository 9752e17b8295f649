"""The ``kassa`` command: serve one app, run them all, migrate, make a revision.

kassa run                     every app, embedded default unless DATABASE_URL/REDIS_URL set
kassa serve ledger_fee        one app in this process
kassa migrate [APP ...]       upgrade each app's database to head (all apps by default)
kassa revision APP -m MSG     autogenerate a migration from the models
kassa keys ACTION ...         create, list, rotate and revoke API keys (kassa keys --help)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from shared.migrations import Migrations, new_revision, upgrade_to_head
from shared.settings import KassaSettings
from shared.topology import APPS, app_entry


def _app_module(name: str) -> ModuleType:
    return importlib.import_module(app_entry(name).module)


def app_settings(name: str) -> KassaSettings:
    """The settings of app ``name``, read from the environment."""
    settings: KassaSettings = _app_module(name).load_settings()
    return settings


def app_migrations(name: str) -> Migrations:
    migrations: Migrations = _app_module(name).MIGRATIONS
    return migrations


async def migrate(names: Sequence[str]) -> None:
    """Upgrade each named app's database to its head revision."""
    for name in names:
        settings = app_settings(name)
        await upgrade_to_head(app_migrations(name), settings.database_url)
        print(f"migrated {name}: {app_migrations(name).head()}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kassa", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve one app")
    serve.add_argument("app")
    migrate_cmd = commands.add_parser("migrate", help="upgrade databases to head")
    migrate_cmd.add_argument("apps", nargs="*", default=[entry.name for entry in APPS])
    revision = commands.add_parser("revision", help="autogenerate a migration")
    revision.add_argument("app")
    revision.add_argument("-m", "--message", required=True)
    commands.add_parser("run", help="start every app and wait until they are ready")
    # Listed for --help only: main() hands `kassa keys ...` to the gateway's own parser.
    commands.add_parser("keys", help="create, list, rotate and revoke API keys")
    return parser


def keys(argv: Sequence[str]) -> int:
    """``kassa keys ...``: the gateway's key tool, imported by name as the apps are."""
    keys_cli = importlib.import_module(app_entry("gateway").module.rsplit(".", 1)[0] + ".keys_cli")
    status: int = keys_cli.main(argv)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kassa`` command."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["keys"]:
        return keys(words[1:])
    args = _parser().parse_args(words)
    if args.command == "serve":
        from shared.server import serve

        serve(args.app)
    elif args.command == "migrate":
        from shared.devrun import database_environment, ensure_postgres_databases

        # The same databases `kassa run` uses: <name>_<app> beside DATABASE_URL, or var/<app>.db.
        var_dir = Path(os.environ.get("KASSA_VAR_DIR", "var")).resolve()
        urls = database_environment(os.environ, var_dir)
        os.environ.update(urls)
        asyncio.run(ensure_postgres_databases(list(urls.values())))
        asyncio.run(migrate(args.apps))
    elif args.command == "revision":
        new_revision(app_migrations(args.app), app_settings(args.app).database_url, args.message)
    elif args.command == "run":
        from shared.devrun import run_all

        return run_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
