"""A local Solana for offline runs and tests: JSON-RPC 2.0 over LiteSVM, plus a faucet.

``python -m sandboxes.solana_rpc serve`` answers the Solana RPC methods the facilitator, the
``solana`` client and the ``x402`` SVM client use, on ``SOLANA_SANDBOX_PORT`` (8101), so that
``SOLANA_RPC_URL=http://127.0.0.1:8101`` stands in for a cluster. Transactions run in
``solders.litesvm.LiteSVM`` (real SPL Token, Token-2022, Associated Token Account and Memo
programs, real signature checks); slots advance with the wall clock, blockhashes expire after
150 slots and statuses move from processed to confirmed to finalized as on a cluster.

At start-up the faucet creates two USDC-like mints (6 decimals) at fixed addresses derived from
fixed seeds, so configuration can name them: :data:`SANDBOX_USDC_MINT` under SPL Token and
:data:`SANDBOX_USDC_2022_MINT` under Token-2022. ``python -m sandboxes.solana_rpc demo-wallet``
prints a funded keypair for demos.

These constants are plain strings so that configuration and tests can name the mints without
importing the sandbox (``tests/sandboxes`` checks they match the seeds in ``config.py``).
"""

from __future__ import annotations

# SPL Token mint, 6 decimals: keypair from sha256("kassa/sandboxes/solana_rpc/usdc-mint").
SANDBOX_USDC_MINT = "7Jk1VYuYPTy1S1PEKg3iK7yVtNGPQARN5p5rwS1w5w2W"
# Token-2022 mint, 6 decimals: keypair from sha256("kassa/sandboxes/solana_rpc/usdc-2022-mint").
SANDBOX_USDC_2022_MINT = "9XHMrTGYrSVnQ9t3YybikuFGqndd8eevqCqixnyw9jor"
SANDBOX_USDC_DECIMALS = 6

__all__ = ["SANDBOX_USDC_2022_MINT", "SANDBOX_USDC_DECIMALS", "SANDBOX_USDC_MINT"]
