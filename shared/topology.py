"""The apps Kassa runs, their fixed local ports and environment prefixes, and the sandboxes.

Names only (module paths as strings): ``shared`` never imports a service or a sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AppEntry:
    """One runnable app."""

    name: str  # the app's name in logs, metrics, databases and caller assertions
    module: str  # module with create_app()
    port: int
    env_prefix: str
    gateway_prefix: str | None = None  # /v1/<gateway_prefix>/... routes to this app

    @property
    def factory(self) -> str:
        return f"{self.module}:create_app"


GATEWAY = AppEntry("gateway", "gateway.app", 8000, "GATEWAY_")
SERVICES = (
    AppEntry("facilitator", "services.facilitator.app", 8001, "FACILITATOR_", "facilitator"),
    AppEntry("custody", "services.custody.app", 8002, "CUSTODY_", "custody"),
    AppEntry("fiscal", "services.fiscal.app", 8003, "FISCAL_", "fiscal"),
    AppEntry("ledger_fee", "services.ledger_fee.app", 8004, "LEDGER_", "ledger"),
)
APPS = (GATEWAY, *SERVICES)
# Sandboxes (stand-ins for Solana, TrovoTech and KRA) take ports from here on.
SANDBOX_BASE_PORT = 8101


@dataclass(frozen=True)
class SandboxEntry:
    """One local stand-in for an outside system, run with ``python -m <module> serve --port P``."""

    name: str
    module: str  # a package with a __main__ that serves it
    port: int
    url_env: str | None = None  # the variable the apps read to find it (set by `kassa run`)
    # Settings the apps need to work with this sandbox (its demo mints, its faucet), given to
    # them by `kassa run` only when it starts the sandbox in place of the real system.
    app_environment: tuple[tuple[str, str], ...] = ()


SANDBOXES = (
    SandboxEntry(
        "solana_rpc",
        "sandboxes.solana_rpc",
        SANDBOX_BASE_PORT,
        "SOLANA_RPC_URL",
        app_environment=(
            ("SOLANA_NETWORK", "devnet"),
            # The sandbox's USDC-like mints (SPL Token and Token-2022), fixed by its seeds.
            (
                "FACILITATOR_EXTRA_MINTS",
                "7Jk1VYuYPTy1S1PEKg3iK7yVtNGPQARN5p5rwS1w5w2W,"
                "9XHMrTGYrSVnQ9t3YybikuFGqndd8eevqCqixnyw9jor",
            ),
            ("FACILITATOR_AIRDROP_LAMPORTS", "10000000000"),
        ),
    ),
    SandboxEntry("trovotech", "sandboxes.trovotech", 8102, "TROVOTECH_BASE_URL"),
    SandboxEntry("etims", "sandboxes.etims", 8103, "KRA_BASE_URL"),
)


def app_entry(name: str) -> AppEntry:
    """The app called ``name`` (``ledger`` is accepted for ``ledger_fee``)."""
    for entry in APPS:
        if name in (entry.name, entry.gateway_prefix):
            return entry
    known = ", ".join(entry.name for entry in APPS)
    raise KeyError(f"unknown app {name!r}; known apps: {known}")
