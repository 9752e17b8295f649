"""A one-process Bantu ledger: real Stellar envelopes, applied to balances held in memory.

Every operation the sandbox performs is a ``TransactionEnvelope`` built with stellar-sdk for the
configured network passphrase, signed by the accounts it spends from, and then *applied from its
XDR*: the ledger decodes the envelope, checks the source sequence number and that every source
account signed the transaction hash, and moves balances for the operations it knows
(``CreateAccount``, ``ChangeTrust``, ``Payment``). Effects come from the envelope itself, so a
``tx_hash`` in a reply or webhook is the hash of exactly what changed the balances.

No Horizon, no consensus: each transaction closes its own ledger. Not thread-safe; the sandbox
calls it under one ``asyncio.Lock``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from stellar_sdk import Account, Asset, Keypair, TransactionBuilder, TransactionEnvelope
from stellar_sdk.exceptions import BadSignatureError
from stellar_sdk.operation import ChangeTrust, CreateAccount, Payment

STROOPS_PER_UNIT = 10_000_000  # Stellar amounts have 7 decimal places
TX_TIMEOUT_S = 300
NATIVE = "native"
NATIVE_CODE = "XBN"  # Bantu's native asset


def to_stroops(amount: str | Decimal) -> int:
    """An amount as Stellar writes it ("10.5") in stroops (105000000)."""
    return int(Decimal(str(amount)) * STROOPS_PER_UNIT)


def amount_text(stroops: int) -> str:
    """Stroops as a Stellar amount string, without trailing zeros ("10.5", "3")."""
    text = format(Decimal(stroops) / STROOPS_PER_UNIT, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def asset_key(asset: Asset) -> str:
    """``native`` or ``CODE:ISSUER``: how a balance is filed."""
    return NATIVE if asset.is_native() else f"{asset.code}:{asset.issuer}"


@dataclass
class LedgerAccount:
    """An account's sequence number, XBN and trustline balances, in stroops."""

    address: str
    sequence: int
    native: int
    trustlines: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SignedTransaction:
    """A transaction the ledger applied."""

    tx_hash: str
    envelope_xdr: str
    ledger: int
    source: str
    sequence: int
    fee: int


class TransactionFailed(Exception):
    """The ledger refused an envelope; ``code`` uses Stellar's result code names."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


Build = Callable[[Any], None]  # appends operations to a TransactionBuilder (untyped SDK)


class BantuChain:
    """Accounts, sequence numbers and balances, changed only by applied envelopes."""

    def __init__(self, passphrase: str, base_fee: int) -> None:
        self.passphrase = passphrase
        self.base_fee = base_fee
        self.ledger = 1
        self.accounts: dict[str, LedgerAccount] = {}
        self.transactions: dict[str, SignedTransaction] = {}

    def genesis_account(self, address: str, native: int) -> LedgerAccount:
        """An account that exists from the first ledger (issuer, custody)."""
        account = LedgerAccount(address, sequence=self.ledger << 32, native=native)
        self.accounts[address] = account
        return account

    def account(self, address: str) -> LedgerAccount | None:
        """The account at ``address``, if it exists."""
        return self.accounts.get(address)

    def balance(self, address: str, asset: Asset) -> int:
        """Stroops of ``asset`` held by ``address`` (0 without an account or trustline)."""
        account = self.accounts.get(address)
        if account is None:
            return 0
        if asset.is_native():
            return account.native
        return account.trustlines.get(asset_key(asset), 0)

    def submit(
        self, source: Keypair, build: Build, signers: Sequence[Keypair], memo: str | None = None
    ) -> SignedTransaction:
        """Build a transaction from ``source``, sign it with ``signers`` and apply it."""
        account = self.accounts.get(source.public_key)
        if account is None:
            raise TransactionFailed("tx_no_source_account", source.public_key)
        builder = TransactionBuilder(
            Account(source.public_key, account.sequence), self.passphrase, self.base_fee
        )
        build(builder)
        if memo:
            builder.add_text_memo(memo)
        envelope = builder.set_timeout(TX_TIMEOUT_S).build()
        for signer in signers:
            envelope.sign(signer)
        return self.apply(envelope.to_xdr())

    def apply(self, envelope_xdr: str) -> SignedTransaction:
        """Check and apply a signed envelope; all of it or nothing."""
        envelope = TransactionEnvelope.from_xdr(envelope_xdr, self.passphrase)
        transaction = envelope.transaction
        source = transaction.source.account_id
        staged: dict[str, LedgerAccount] = {}
        source_account = self._staged(staged, source)
        if transaction.sequence != source_account.sequence + 1:
            raise TransactionFailed("tx_bad_seq", f"expected {source_account.sequence + 1}")
        self._check_signatures(envelope, source)
        source_account.sequence = transaction.sequence
        self._debit_native(source_account, transaction.fee, "tx_insufficient_balance")
        for operation in transaction.operations:
            self._apply_operation(staged, operation, source)
        self.accounts.update(staged)
        self.ledger += 1
        applied = SignedTransaction(
            tx_hash=envelope.hash_hex(),
            envelope_xdr=envelope_xdr,
            ledger=self.ledger,
            source=source,
            sequence=transaction.sequence,
            fee=transaction.fee,
        )
        self.transactions[applied.tx_hash] = applied
        return applied

    def _staged(self, staged: dict[str, LedgerAccount], address: str) -> LedgerAccount:
        # Changes go to copies; they replace the originals only if every operation succeeds.
        if address not in staged:
            original = self.accounts.get(address)
            if original is None:
                raise TransactionFailed("op_no_account", address)
            staged[address] = copy.deepcopy(original)
        return staged[address]

    def _check_signatures(self, envelope: Any, transaction_source: str) -> None:
        required = {transaction_source}
        for operation in envelope.transaction.operations:
            if operation.source is not None:
                required.add(operation.source.account_id)
        tx_hash = envelope.hash()
        for address in required:
            if not _signed_by(envelope.signatures, Keypair.from_public_key(address), tx_hash):
                raise TransactionFailed("tx_bad_auth", f"missing signature of {address}")

    def _apply_operation(
        self, staged: dict[str, LedgerAccount], operation: Any, transaction_source: str
    ) -> None:
        source = operation.source.account_id if operation.source else transaction_source
        if isinstance(operation, CreateAccount):
            self._create_account(staged, source, operation)
        elif isinstance(operation, ChangeTrust) and isinstance(operation.asset, Asset):
            account = self._staged(staged, source)
            account.trustlines.setdefault(asset_key(operation.asset), 0)
        elif isinstance(operation, Payment):
            self._pay(staged, source, operation)
        else:
            raise TransactionFailed("op_not_supported", type(operation).__name__)

    def _create_account(
        self, staged: dict[str, LedgerAccount], source: str, operation: CreateAccount
    ) -> None:
        destination = operation.destination
        if destination in self.accounts or destination in staged:
            raise TransactionFailed("op_already_exists", destination)
        funder = self._staged(staged, source)
        starting = to_stroops(operation.starting_balance)
        self._debit_native(funder, starting, "op_underfunded")
        # A new account's sequence number starts at the ledger that created it, shifted 32 bits.
        staged[destination] = LedgerAccount(destination, (self.ledger + 1) << 32, starting)

    def _pay(self, staged: dict[str, LedgerAccount], source: str, operation: Payment) -> None:
        asset: Asset = operation.asset
        amount = to_stroops(operation.amount)
        sender = self._staged(staged, source)
        receiver = self._staged(staged, operation.destination.account_id)
        if asset.is_native():
            self._debit_native(sender, amount, "op_underfunded")
            receiver.native += amount
            return
        key = asset_key(asset)
        # The issuer creates its asset by paying it out and destroys what is paid back.
        if sender.address != asset.issuer:
            if sender.trustlines.get(key, 0) < amount:
                raise TransactionFailed("op_underfunded", f"{sender.address} holds too little")
            sender.trustlines[key] -= amount
        if receiver.address != asset.issuer:
            if key not in receiver.trustlines:
                raise TransactionFailed("op_no_trust", f"{receiver.address} does not trust {key}")
            receiver.trustlines[key] += amount

    @staticmethod
    def _debit_native(account: LedgerAccount, stroops: int, code: str) -> None:
        if account.native < stroops:
            raise TransactionFailed(code, f"{account.address} holds too little {NATIVE_CODE}")
        account.native -= stroops


def _signed_by(signatures: Sequence[Any], keypair: Keypair, tx_hash: bytes) -> bool:
    hint = keypair.signature_hint()
    for decorated in signatures:
        if decorated.signature_hint != hint:
            continue
        try:
            keypair.verify(tx_hash, decorated.signature)
        except BadSignatureError:
            continue
        return True
    return False
