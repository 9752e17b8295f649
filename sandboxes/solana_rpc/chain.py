"""The sandbox's ledger: one LiteSVM, a slot clock, blockhash lifetimes and transaction records.

LiteSVM executes transactions with the real programs and signature checks but has no notion of
slots passing: it knows one "latest" blockhash. A cluster instead produces a block (and a
blockhash) every ~400 ms and accepts a transaction whose blockhash is at most 150 blocks old
(``MAX_PROCESSING_AGE`` in Agave: ``is_hash_valid_for_age``), rejecting older ones with
``BlockhashNotFound``. So the chain keeps its own clock and blockhash registry, turns LiteSVM's
blockhash check off and applies the cluster's rule itself, in one place, so that
``isBlockhashValid``, ``simulateTransaction`` and ``sendTransaction`` always agree.

Other cluster behaviour modelled here (Solana docs: "Transaction confirmation & expiration",
"Commitment status", the sendTransaction/simulateTransaction pages, and Agave ``rpc.rs``):

- A slot is produced every ``slot_ms`` of wall time (plus manual advances); block height equals
  the slot (the sandbox skips no slots). Each slot's blockhash is derived from a per-run seed.
- A transaction processed in slot S is ``processed`` during S, ``confirmed`` from S+1 and
  ``finalized`` (``confirmations: null``) from S+32. Reads at a commitment see the slot that
  deep; account state itself is always the latest (the sandbox keeps no forks).
- ``sendTransaction`` with preflight checks signatures, then simulates; a failing simulation
  lands nothing. Without preflight the transaction goes straight to "the leader": if it fails
  before execution (bad signature, stale blockhash, no funds for the fee) it is dropped and its
  status stays null; if it fails while executing it lands with ``err`` and pays its fee.
- Statuses of recent transactions (300 slots, the status cache) are found without
  ``searchTransactionHistory``; older ones only with it.
- The fee is 5000 lamports per signature plus the prioritization fee (see ``fees``); LiteSVM
  charges the first, the chain debits the second.

Not modelled: forks and rollbacks, durable nonces, address lookup tables in balances and
``loadedAddresses``, rent collection, vote and stake programs.
"""

from __future__ import annotations

import enum
import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import (
    FailedTransactionMetadata,
    InnerInstruction,
    SimulateResult,
    TransactionMetadata,
)
from solders.transaction_status import (
    TransactionErrorFieldless,
    TransactionErrorType,
    TransactionReturnData,
)

from sandboxes.solana_rpc.fees import prioritization_fee, transaction_fee
from sandboxes.solana_rpc.tokens import TokenBalance, decode_mint, token_balances

MAX_PROCESSING_AGE = 150  # slots a blockhash stays usable after the slot that produced it
RECENT_SLOTS = 300  # blockhashes and statuses kept at hand (Agave's status cache holds 300)
FINALIZED_DEPTH = 32
SLOTS_PER_EPOCH = 432_000
TRANSACTION_HISTORY = 100_000  # LiteSVM's memory of signatures, for AlreadyProcessed
TREASURY_LAMPORTS = 500_000_000 * 1_000_000_000  # the faucet's 500 million SOL
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")

MessageAny = Message | MessageV0


class Commitment(enum.StrEnum):
    """How settled a slot is; the value is the name the RPC API uses."""

    PROCESSED = "processed"
    CONFIRMED = "confirmed"
    FINALIZED = "finalized"

    @property
    def depth(self) -> int:
        """Slots behind the newest one that this commitment level reads."""
        return {"processed": 0, "confirmed": 1, "finalized": FINALIZED_DEPTH}[self.value]


class SlotClock:
    """Slots from wall time: one per ``slot_ms`` since start, plus manual advances."""

    def __init__(self, slot_ms: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._slot_s = slot_ms / 1000
        self._monotonic = monotonic
        self._started = monotonic()
        self._advanced = 0

    def current(self) -> int:
        ticks = int((self._monotonic() - self._started) / self._slot_s) if self._slot_s else 0
        return ticks + self._advanced

    def advance(self, slots: int) -> None:
        self._advanced += slots


@dataclass(frozen=True)
class Simulation:
    """What running a transaction without committing it showed."""

    err: TransactionErrorType | None
    logs: list[str]
    units_consumed: int
    return_data: TransactionReturnData | None
    inner_instructions: list[list[InnerInstruction]]
    post_accounts: dict[Pubkey, Account]
    fee: int
    loaded_accounts_data_size: int
    # With replaceRecentBlockhash: the blockhash used and its last valid block height.
    replacement: tuple[Hash, int] | None = None

    @classmethod
    def refused(cls, err: TransactionErrorType, fee: int) -> Simulation:
        """A transaction rejected before execution: no logs, no units."""
        return cls(err, [], 0, None, [], {}, fee, 0)


@dataclass(frozen=True)
class TransactionRecord:
    """A landed transaction, with what ``getTransaction`` reports about it."""

    transaction: VersionedTransaction
    slot: int
    block_time: int
    err: TransactionErrorType | None
    fee: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_token_balances: list[TokenBalance]
    post_token_balances: list[TokenBalance]
    logs: list[str]
    inner_instructions: list[list[InnerInstruction]]
    units_consumed: int
    return_data: TransactionReturnData | None = field(default=None)

    @property
    def signature(self) -> Signature:
        return self.transaction.signatures[0]


@dataclass(frozen=True)
class SignatureStatus:
    """One entry of ``getSignatureStatuses``."""

    slot: int
    confirmations: int | None
    err: TransactionErrorType | None
    commitment: Commitment


class SignatureVerificationFailed(Exception):
    """A signature does not verify (the RPC answers -32003 before simulating)."""


class PreflightFailed(Exception):
    """The preflight simulation failed; nothing was sent."""

    def __init__(self, simulation: Simulation) -> None:
        super().__init__(str(simulation.err))
        self.simulation = simulation


def with_recent_blockhash(tx: VersionedTransaction, blockhash: Hash) -> VersionedTransaction:
    """``tx`` with its message's blockhash replaced (its signatures no longer verify)."""
    message = tx.message
    replaced: MessageAny
    if isinstance(message, MessageV0):
        replaced = MessageV0(
            message.header,
            message.account_keys,
            blockhash,
            message.instructions,
            message.address_table_lookups,
        )
    else:
        header = message.header
        replaced = Message.new_with_compiled_instructions(
            header.num_required_signatures,
            header.num_readonly_signed_accounts,
            header.num_readonly_unsigned_accounts,
            message.account_keys,
            blockhash,
            message.instructions,
        )
    return VersionedTransaction.populate(replaced, tx.signatures)


def _metadata(result: SimulateResult | TransactionMetadata) -> TransactionMetadata:
    return result.meta() if not isinstance(result, TransactionMetadata) else result


def _return_data(meta: TransactionMetadata) -> TransactionReturnData | None:
    # The stub calls it transaction_return_data(); LiteSVM's class has return_data().
    data: TransactionReturnData = cast(Any, meta).return_data()
    return data if data.data else None


class Chain:
    """One sandbox ledger. Not thread-safe: callers serialize access (the app's lock)."""

    def __init__(
        self,
        clock: SlotClock,
        treasury: Keypair,
        *,
        wall_time: Callable[[], float] = time.time,
        genesis_seed: bytes | None = None,
    ) -> None:
        self._svm = (
            LiteSVM().with_blockhash_check(False).with_transaction_history(TRANSACTION_HISTORY)
        )
        self._clock = clock
        self._wall_time = wall_time
        # A fresh seed per run: blockhashes from an earlier run are unknown, as after a reset.
        self._seed = genesis_seed if genesis_seed is not None else os.urandom(32)
        self.genesis_hash = Hash.hash(self._seed + b"genesis")
        self.treasury = treasury
        self._slot = -1
        self._hash_by_slot: dict[int, Hash] = {}
        self._slot_by_hash: dict[Hash, int] = {}
        self._records: dict[Signature, TransactionRecord] = {}
        self._airdrops = itertools.count(1)
        self.sync()
        self._svm.set_account(treasury.pubkey(), Account(TREASURY_LAMPORTS, b"", SYSTEM_PROGRAM))

    # -- slots and blockhashes -------------------------------------------------------------

    @property
    def slot(self) -> int:
        """The newest (processed) slot."""
        return self._slot

    @property
    def transaction_count(self) -> int:
        return len(self._records)

    def sync(self) -> int:
        """Produce the slots the clock has reached since the last call; the newest slot."""
        target = self._clock.current()
        if target > self._slot:
            self._produce_slots(target)
        return self._slot

    def advance(self, slots: int) -> int:
        """Move the clock ``slots`` ahead at once (tests, demos); the newest slot."""
        self._clock.advance(slots)
        return self.sync()

    def _produce_slots(self, target: int) -> None:
        # Only the last RECENT_SLOTS matter: older blockhashes are expired either way.
        for slot in range(max(self._slot + 1, target - RECENT_SLOTS), target + 1):
            blockhash = Hash.hash(self._seed + slot.to_bytes(8, "little"))
            self._hash_by_slot[slot] = blockhash
            self._slot_by_hash[blockhash] = slot
        for slot in [slot for slot in self._hash_by_slot if slot < target - RECENT_SLOTS]:
            del self._slot_by_hash[self._hash_by_slot.pop(slot)]
        self._slot = target
        epoch = target // SLOTS_PER_EPOCH
        self._svm.set_clock(Clock(target, 0, epoch, epoch + 1, int(self._wall_time())))

    def slot_at(self, commitment: Commitment) -> int:
        """The newest slot at ``commitment``."""
        return max(0, self._slot - commitment.depth)

    def blockhash_at(self, slot: int) -> Hash:
        """The blockhash slot ``slot`` produced (within the recent window)."""
        return self._hash_by_slot[slot]

    @staticmethod
    def last_valid_block_height(slot: int) -> int:
        """The last block height at which a blockhash from ``slot`` is accepted."""
        return slot + MAX_PROCESSING_AGE

    def knows_blockhash(self, blockhash: Hash) -> bool:
        """True while ``blockhash`` is in the recent window (valid or just expired)."""
        return blockhash in self._slot_by_hash

    def is_blockhash_valid(self, blockhash: Hash, at_slot: int | None = None) -> bool:
        """The cluster's rule, seen from ``at_slot`` (default: the newest slot): the blockhash
        was produced by then, at most MAX_PROCESSING_AGE slots before it."""
        at = self._slot if at_slot is None else at_slot
        produced = self._slot_by_hash.get(blockhash)
        return produced is not None and 0 <= at - produced <= MAX_PROCESSING_AGE

    @staticmethod
    def fee_for(message: MessageAny) -> int:
        """What the fee payer of ``message`` is charged."""
        return transaction_fee(message)

    # -- accounts ---------------------------------------------------------------------------

    def account(self, address: Pubkey) -> Account | None:
        """The account at ``address``; an account without lamports does not exist."""
        account = self._svm.get_account(address)
        return account if account is not None and account.lamports > 0 else None

    def decimals_of(self, mint: Pubkey) -> int | None:
        """The decimals of the mint at ``mint``, if it is one."""
        account = self.account(mint)
        state = decode_mint(account) if account is not None else None
        return state.decimals if state is not None else None

    def rent_exempt_minimum(self, data_len: int) -> int:
        return self._svm.minimum_balance_for_rent_exemption(data_len)

    # -- transactions ----------------------------------------------------------------------

    @staticmethod
    def verify_signatures(tx: VersionedTransaction) -> None:
        """Raise ``SignatureVerificationFailed`` unless every signature verifies."""
        if not all(tx.verify_with_results()):
            raise SignatureVerificationFailed

    def simulate(
        self, tx: VersionedTransaction, *, sig_verify: bool, replace_blockhash: Commitment | None
    ) -> Simulation:
        """``simulateTransaction``: run ``tx`` against the latest state, commit nothing."""
        replacement: tuple[Hash, int] | None = None
        if replace_blockhash is not None:
            slot = self.slot_at(replace_blockhash)
            tx = with_recent_blockhash(tx, self.blockhash_at(slot))
            replacement = (self.blockhash_at(slot), self.last_valid_block_height(slot))
        if sig_verify:
            self.verify_signatures(tx)
        return replace(self._simulate(tx), replacement=replacement)

    def send(self, tx: VersionedTransaction, *, skip_preflight: bool) -> Signature:
        """``sendTransaction``: preflight unless skipped, then hand ``tx`` to the leader."""
        if not skip_preflight:
            self.verify_signatures(tx)
            simulation = self._simulate(tx)
            if simulation.err is not None:
                raise PreflightFailed(simulation)
        self._execute(tx)
        return tx.signatures[0]

    def submit(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> Signature:
        """Send ``instructions`` with the treasury paying, signed by it and ``signers``."""
        message = MessageV0.try_compile(
            self.treasury.pubkey(), instructions, [], self.blockhash_at(self._slot)
        )
        return self.send(
            VersionedTransaction(message, [self.treasury, *signers]), skip_preflight=False
        )

    def airdrop(self, recipient: Pubkey, lamports: int) -> Signature:
        """``requestAirdrop``: a transfer from the treasury, landed like any transaction."""
        payment = transfer(
            TransferParams(
                from_pubkey=self.treasury.pubkey(), to_pubkey=recipient, lamports=lamports
            )
        )
        # The memo keeps two identical airdrops in one slot from being one transaction.
        memo = Instruction(MEMO_PROGRAM, f"airdrop {next(self._airdrops)}".encode(), [])
        return self.submit([payment, memo], [])

    def _refusal(self, tx: VersionedTransaction) -> TransactionErrorType | None:
        """Why a cluster would reject ``tx`` before executing it, where LiteSVM would not."""
        if not self.is_blockhash_valid(tx.message.recent_blockhash):
            return TransactionErrorFieldless.BlockhashNotFound
        payer = self._svm.get_account(tx.message.account_keys[0])
        if payer is None or payer.lamports == 0:
            return TransactionErrorFieldless.AccountNotFound
        if payer.lamports < transaction_fee(tx.message):
            return TransactionErrorFieldless.InsufficientFundsForFee
        return None

    def _charge_prioritization_fee(self, message: MessageAny) -> Account | None:
        """Debit the fee part LiteSVM does not charge; the payer's account before, to restore."""
        fee = prioritization_fee(message)
        if fee == 0:
            return None
        payer = message.account_keys[0]
        before = self._svm.get_account(payer)
        assert before is not None  # _refusal() checked the payer exists and can pay
        self._svm.set_account(
            payer,
            Account(
                before.lamports - fee,
                bytes(before.data),
                before.owner,
                before.executable,
                before.rent_epoch,
            ),
        )
        return before

    def _restore(self, address: Pubkey, before: Account | None) -> None:
        if before is not None:
            self._svm.set_account(address, before)

    def _loaded_data_size(self, message: MessageAny) -> int:
        accounts = (self._svm.get_account(key) for key in message.account_keys)
        return sum(len(account.data) for account in accounts if account is not None)

    def _simulate(self, tx: VersionedTransaction) -> Simulation:
        message = tx.message
        fee = transaction_fee(message)
        refusal = self._refusal(tx)
        if refusal is not None:
            return Simulation.refused(refusal, fee)
        before = self._charge_prioritization_fee(message)
        # Signatures were verified already when the caller asked for it; a simulation with
        # sigVerify off must accept unsigned slots (x402 payloads leave the fee payer's empty).
        self._svm.with_sigverify(False)
        try:
            result = self._svm.simulate_transaction(tx)
        finally:
            self._svm.with_sigverify(True)
            self._restore(message.account_keys[0], before)
        meta = _metadata(result)
        return Simulation(
            err=result.err() if isinstance(result, FailedTransactionMetadata) else None,
            logs=list(meta.logs()),
            units_consumed=meta.compute_units_consumed(),
            return_data=_return_data(meta),
            inner_instructions=meta.inner_instructions(),
            post_accounts=(
                {}
                if isinstance(result, FailedTransactionMetadata)
                else dict(result.post_accounts())
            ),
            fee=fee,
            loaded_accounts_data_size=self._loaded_data_size(message),
        )

    def _execute(self, tx: VersionedTransaction) -> TransactionRecord | None:
        """Process ``tx`` as the leader would: it lands (maybe with an error) or is dropped."""
        if self._refusal(tx) is not None:
            return None
        message = tx.message
        keys = list(message.account_keys)
        before = [self._svm.get_account(key) for key in keys]
        charged = self._charge_prioritization_fee(message)
        payer_lamports = self._svm.get_balance(keys[0]) or 0
        result = self._svm.send_transaction(tx)
        err = result.err() if isinstance(result, FailedTransactionMetadata) else None
        # A landed failure still pays its fee; a transaction refused before execution
        # (bad signature, already processed) changes nothing and is never recorded.
        if err is not None and (self._svm.get_balance(keys[0]) or 0) >= payer_lamports:
            self._restore(keys[0], charged)
            return None
        record = self._record(tx, result, err, before)
        self._records[record.signature] = record
        return record

    def _record(
        self,
        tx: VersionedTransaction,
        result: TransactionMetadata | FailedTransactionMetadata,
        err: TransactionErrorType | None,
        before: list[Account | None],
    ) -> TransactionRecord:
        after = [self._svm.get_account(key) for key in tx.message.account_keys]
        meta = _metadata(result)
        return TransactionRecord(
            transaction=tx,
            slot=self._slot,
            block_time=int(self._wall_time()),
            err=err,
            fee=transaction_fee(tx.message),
            pre_balances=[account.lamports if account else 0 for account in before],
            post_balances=[account.lamports if account else 0 for account in after],
            pre_token_balances=token_balances(before, self.decimals_of),
            post_token_balances=token_balances(after, self.decimals_of),
            logs=list(meta.logs()),
            inner_instructions=meta.inner_instructions(),
            units_consumed=meta.compute_units_consumed(),
            return_data=_return_data(meta),
        )

    # -- statuses and history --------------------------------------------------------------

    def commitment_of(self, slot: int) -> Commitment:
        """How settled ``slot`` is now."""
        depth = self._slot - slot
        if depth >= Commitment.FINALIZED.depth:
            return Commitment.FINALIZED
        if depth >= Commitment.CONFIRMED.depth:
            return Commitment.CONFIRMED
        return Commitment.PROCESSED

    def status(self, signature: Signature, *, search_history: bool) -> SignatureStatus | None:
        """The status of a landed transaction; ``None`` if unknown (or too old to be cached)."""
        record = self._records.get(signature)
        if record is None or (not search_history and self._slot - record.slot > RECENT_SLOTS):
            return None
        commitment = self.commitment_of(record.slot)
        confirmations = None if commitment is Commitment.FINALIZED else self._slot - record.slot
        return SignatureStatus(record.slot, confirmations, record.err, commitment)

    def transaction(self, signature: Signature, commitment: Commitment) -> TransactionRecord | None:
        """A landed transaction once it has reached ``commitment``."""
        record = self._records.get(signature)
        if record is None or self.commitment_of(record.slot).depth < commitment.depth:
            return None
        return record
