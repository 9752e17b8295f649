"""The facilitator's fee payers: keys from configuration, rotation, balances and the floor.

Secret keys live only in this object's memory; its ``repr`` and the logs name public keys.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import orjson
from solders.keypair import Keypair
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from services.facilitator.metrics import FEE_PAYER_BALANCE


class FeePayerKeyError(ValueError):
    """A configured fee-payer key that cannot be read (the message never shows the key)."""


def parse_fee_payer_keys(text: str) -> list[Keypair]:
    """Keys from ``FACILITATOR_FEE_PAYER_KEYS``: base58 secrets or JSON byte arrays."""
    keypairs: list[Keypair] = []
    for position, item in enumerate(_split_keys(text), start=1):
        try:
            if item.startswith("["):
                keypairs.append(Keypair.from_bytes(bytes(orjson.loads(item))))
            else:
                keypairs.append(Keypair.from_base58_string(item))
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            raise FeePayerKeyError(
                f"FACILITATOR_FEE_PAYER_KEYS entry {position} is not a Solana secret key"
            ) from exc
    return keypairs


def _split_keys(text: str) -> Iterator[str]:
    # JSON arrays contain commas, so split on commas outside brackets.
    depth, start = 0, 0
    for index, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            yield from _nonempty(text[start:index])
            start = index + 1
    yield from _nonempty(text[start:])


def _nonempty(item: str) -> Iterator[str]:
    if item.strip():
        yield item.strip()


class FeePayers:
    """The keys that pay transaction fees, handed out in turn."""

    def __init__(self, keypairs: list[Keypair], *, app_name: str, floor_lamports: int) -> None:
        if not keypairs:
            raise FeePayerKeyError("at least one fee payer is required")
        self._by_address = {str(keypair.pubkey()): keypair for keypair in keypairs}
        self._turns = itertools.cycle(list(self._by_address))
        self._balances: dict[str, int | None] = dict.fromkeys(self._by_address)
        self._app_name = app_name
        self.floor_lamports = floor_lamports

    def __repr__(self) -> str:
        return f"FeePayers({', '.join(self._by_address)})"

    @property
    def addresses(self) -> list[str]:
        return list(self._by_address)

    @property
    def address_set(self) -> frozenset[str]:
        return frozenset(self._by_address)

    def next_address(self) -> str:
        """The fee payer to offer next (``/supported``): round robin over those above the floor."""
        for _ in range(len(self._by_address)):
            address = next(self._turns)
            if not self.below_floor(address):
                return address
        return next(self._turns)

    def manages(self, address: str) -> bool:
        return address in self._by_address

    def pubkey(self, address: str) -> Pubkey:
        return self._by_address[address].pubkey()

    def sign(self, transaction: VersionedTransaction, address: str) -> VersionedTransaction:
        """The transaction with the fee payer's signature in slot 0."""
        message: Message | MessageV0 = transaction.message
        signature: Signature = self._by_address[address].sign_message(to_bytes_versioned(message))
        signatures = [signature, *list(transaction.signatures)[1:]]
        return VersionedTransaction.populate(message, signatures)

    def record_balance(self, address: str, lamports: int) -> None:
        self._balances[address] = lamports
        FEE_PAYER_BALANCE.labels(self._app_name, address).set(lamports)

    def balance(self, address: str) -> int | None:
        """The last balance read, or None before the first read."""
        return self._balances.get(address)

    def below_floor(self, address: str) -> bool:
        balance = self._balances.get(address)
        return balance is not None and balance < self.floor_lamports
