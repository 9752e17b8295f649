"""The Solana clusters x402 names, in both spellings, and the assets each accepts.

x402 v1 names networks (``solana``, ``solana-devnet``); v2 uses CAIP-2 ids whose reference is
the first 32 characters of the cluster's genesis hash. Kassa keeps one spelling inside (CAIP-2)
and answers a v1 request in v1 words.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.pubkey import Pubkey

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ASSOCIATED_TOKEN_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
# The older memo program id some wallets still emit.
MEMO_V1_PROGRAM = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
LIGHTHOUSE_PROGRAM = Pubkey.from_string("L2TExMFKdjpN9kozasaurPirfHy9P8sbXoAN1qA3S95")

TOKEN_PROGRAMS = frozenset({TOKEN_PROGRAM, TOKEN_2022_PROGRAM})
MEMO_PROGRAMS = frozenset({MEMO_PROGRAM, MEMO_V1_PROGRAM})


@dataclass(frozen=True)
class Cluster:
    """One Solana cluster as x402 knows it."""

    name: str  # SOLANA_NETWORK's word for it (Solana's own cluster names)
    caip2: str
    v1_name: str
    usdc_mint: str


MAINNET = Cluster(
    "mainnet-beta",
    "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
    "solana",
    "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
)
DEVNET = Cluster(
    "devnet",
    "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
    "solana-devnet",
    "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
)
TESTNET = Cluster(
    "testnet",
    "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z",
    "solana-testnet",
    "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
)
CLUSTERS = (MAINNET, DEVNET, TESTNET)
_BY_ANY_NAME = {
    spelling: cluster
    for cluster in CLUSTERS
    for spelling in (cluster.name, cluster.caip2, cluster.v1_name)
}
_BY_ANY_NAME["mainnet"] = MAINNET


def cluster_named(name: str) -> Cluster | None:
    """The cluster a v1 name, a CAIP-2 id or a Solana cluster name stands for."""
    return _BY_ANY_NAME.get(name)


@dataclass(frozen=True)
class NetworkConfig:
    """The cluster this facilitator settles on and what it accepts there."""

    cluster: Cluster
    allowed_mints: frozenset[str]

    def spelling(self, x402_version: int) -> str:
        """The network's name in a reply to a request of this protocol version."""
        return self.cluster.v1_name if x402_version == 1 else self.cluster.caip2
