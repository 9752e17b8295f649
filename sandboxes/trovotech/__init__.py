"""A local TrovoTech: the custody API on a simulated Bantu chain, with signed webhooks and faults.

``python -m sandboxes.trovotech serve`` answers the TrovoTech endpoints Kassa's custody client
uses (``/wallet/create``, ``/wallet/{id}``, ``/token/mint``, ``/payout/distribute``,
``/tokens/my``, ``/telemetry/sync``, ``/token/transfer`` and a connection test at the base URL)
on port 8102, both at the root and under ``/v1`` (TrovoTech's published base URLs end in
``/v1``). Wallets are real ed25519 keypairs held in custody; mints, transfers and payouts are
real Stellar transactions signed for the configured network passphrase and applied to an
in-memory ledger, so every ``tx_hash`` is the hash of a real envelope. Each operation is
followed by the webhook TrovoTech sends, HMAC-signed, retried with backoff, and optionally
duplicated, reordered, badly signed or preceded by API faults (``/sandbox/faults``).

The issuer and custody keys are derived from fixed ``dev-only-`` seeds so that configuration can
name them; they are sandbox keys, public by construction, and must never hold anything real.
These constants are plain strings so that configuration and tests can use them without
importing the sandbox (``tests/sandboxes`` checks they match the seeds in ``config.py``).
"""

from __future__ import annotations

# ed25519 from sha256("dev-only-kassa/sandboxes/trovotech/issuer"): issues asset tokens and NGN.
SANDBOX_ISSUER_PUBLIC_KEY = "GDZYONQCWXJAUZIL5JBY7CJLOTLL6YTC7CWWOHLQBFGRV7RQZ7RTGZBK"
# ed25519 from sha256("dev-only-kassa/sandboxes/trovotech/custody"): TROVOTECH_CUSTODY_WALLET.
SANDBOX_CUSTODY_WALLET = "GBN4W5ZTHELZBXG5NMSR7BR45O6YY6SDCUW7HOQ23IWB4QZLQWD2FG4X"

__all__ = ["SANDBOX_CUSTODY_WALLET", "SANDBOX_ISSUER_PUBLIC_KEY"]
