"""The custodian's rules: wallets, asset tokens, payouts, transfers and telemetry.

Everything here is synchronous and runs under the sandbox's lock, so a check and the change it
guards (the 100% ownership cap and the mint that reserves it) are one step. Every balance change
is a transaction on :class:`~sandboxes.trovotech.chain.BantuChain`; every outcome a client
must hear about is handed to ``emit`` as a webhook event.

Accounts: the *issuer* issues each asset's tokens and the payout asset (NGN by default); the
*custody wallet* (the trustee's, ``TROVOTECH_CUSTODY_WALLET``) funds new wallets and pays
payouts from a float the issuer gives it at start-up; each investor wallet is a keypair the
custodian holds, so it signs its own trustlines and transfers.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from stellar_sdk import Asset, Keypair

from sandboxes.trovotech.chain import (
    STROOPS_PER_UNIT,
    BantuChain,
    SignedTransaction,
    TransactionFailed,
    amount_text,
    asset_key,
)
from sandboxes.trovotech.config import TrovoTechSandboxSettings
from sandboxes.trovotech.errors import TrovoTechError, bad_request, conflict, not_found
from sandboxes.trovotech.schemas import (
    AssetRead,
    CustodyUpdatedData,
    Distribution,
    MintCreate,
    MintRead,
    PayoutCompletedData,
    PayoutCreate,
    PayoutFailedData,
    PayoutRead,
    PayoutStatus,
    TelemetryRead,
    TelemetrySync,
    TokenMintedData,
    TokenRead,
    TokenStatus,
    TransferCompletedData,
    TransferCreate,
    TransferRead,
    WalletCreate,
    WalletCreatedData,
    WalletRead,
)

Emit = Callable[[str, dict[str, Any]], None]

FULL_OWNERSHIP = Decimal(100)
GENESIS_XBN = 1_000_000_000 * STROOPS_PER_UNIT
WALLET_STARTING_XBN = "5"  # covers a wallet's reserves and fees for its own transfers
# The payout float the issuer gives the custody wallet (Stellar's largest amount is ~9.2e11).
CUSTODY_FLOAT = "100000000000"
IN_CUSTODY = "in_custody"
PAYOUT_FAULT_REASON = "The trustee rejected the distribution (sandbox fault injection)."


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8).upper()}"


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def asset_code_for(asset_id: str) -> str:
    """The 12-character Stellar asset code of an asset's tokens (ids may not be alphanumeric)."""
    return "FT" + hashlib.sha256(asset_id.encode()).hexdigest()[:10].upper()


def split_by_largest_remainder(total: int, weights: Sequence[Decimal]) -> list[int]:
    """``total`` in integer parts proportional to ``weights``, summing exactly to ``total``.

    Each part is the floor of its exact share; the units left over go one each to the largest
    fractional remainders, ties to the earlier weight (the order the caller gave).
    """
    weight_sum = sum((Fraction(weight) for weight in weights), Fraction(0))
    if weight_sum <= 0:
        raise ValueError("weights must add up to more than zero")
    shares = [Fraction(total) * Fraction(weight) / weight_sum for weight in weights]
    parts = [share.numerator // share.denominator for share in shares]
    left = total - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda index: (-(shares[index] % 1), index))
    for index in by_remainder[:left]:
        parts[index] += 1
    return parts


@dataclass
class Wallet:
    wallet_id: str
    keypair: Keypair
    trustee_ref: str
    investor_email: str
    investor_name: str | None
    kyc_verified: bool
    tx: SignedTransaction
    created_at: datetime

    @property
    def address(self) -> str:
        return str(self.keypair.public_key)


@dataclass
class AssetRecord:
    asset_id: str
    asset_type: str
    asset_code: str
    trustee_ref: str
    custody_status: str = IN_CUSTODY
    allocated: Decimal = Decimal(0)
    telemetry_uri: str | None = None
    telemetry: dict[str, Any] | None = None


@dataclass
class Token:
    token_id: str
    asset: AssetRecord
    investor_wallet: str
    fraction: Decimal
    investment_amount: int
    metadata_hash: str
    tx: SignedTransaction
    created_at: datetime
    status: TokenStatus = "pending"
    total_returns: int = 0
    minted_at: datetime | None = None


@dataclass
class Payout:
    payout_id: str
    period: str
    description: str
    total_amount: int
    distributions: list[Distribution]
    will_fail: bool
    created_at: datetime
    status: PayoutStatus = "processing"
    tx: SignedTransaction | None = None
    reason: str | None = None
    completed_at: datetime | None = None


@dataclass
class Transfer:
    transfer_id: str
    token: Token
    from_wallet: str
    to_wallet: str
    tx: SignedTransaction
    transferred_at: datetime


@dataclass
class Books:
    """What the custodian holds, by id."""

    wallets: dict[str, Wallet] = field(default_factory=dict)
    wallets_by_address: dict[str, Wallet] = field(default_factory=dict)
    wallets_by_email: dict[str, Wallet] = field(default_factory=dict)
    assets: dict[str, AssetRecord] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    payouts: dict[str, Payout] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)


class Custodian:
    """TrovoTech's side of custody, on one in-memory Bantu ledger."""

    def __init__(self, settings: TrovoTechSandboxSettings, chain: BantuChain, emit: Emit) -> None:
        self.settings = settings
        self.chain = chain
        self.emit = emit
        self.issuer = settings.issuer_keypair()
        self.custody = settings.custody_keypair()
        self.payout_asset = Asset(settings.payout_asset_code, self.issuer.public_key)
        self.books = Books()
        self._minor_per_unit = int(10**settings.payout_asset_decimals)
        self._open_ledger()

    def _open_ledger(self) -> None:
        self.chain.genesis_account(self.issuer.public_key, GENESIS_XBN)
        self.chain.genesis_account(self.custody.public_key, GENESIS_XBN)

        def float_for_custody(builder: Any) -> None:
            builder.append_change_trust_op(self.payout_asset, source=self.custody.public_key)
            builder.append_payment_op(self.custody.public_key, self.payout_asset, CUSTODY_FLOAT)

        self.chain.submit(self.issuer, float_for_custody, [self.issuer, self.custody])

    # -- wallets -------------------------------------------------------------------------------

    def create_wallet(self, request: WalletCreate) -> tuple[Wallet, bool]:
        """The investor's wallet, created on first call (``True``) and returned after."""
        email = request.investor_email.lower()
        existing = self.books.wallets_by_email.get(email)
        if existing is not None:
            return existing, False
        keypair = Keypair.random()

        def open_account(builder: Any) -> None:
            builder.append_create_account_op(keypair.public_key, WALLET_STARTING_XBN)
            builder.append_change_trust_op(self.payout_asset, source=keypair.public_key)

        tx = self._submit(self.custody, open_account, [self.custody, keypair])
        wallet = Wallet(
            wallet_id=_new_id("WAL"),
            keypair=keypair,
            trustee_ref=_new_id("TRUSTEE"),
            investor_email=email,
            investor_name=request.investor_name,
            kyc_verified=request.kyc_verified,
            tx=tx,
            created_at=_now(),
        )
        self.books.wallets[wallet.wallet_id] = wallet
        self.books.wallets_by_address[wallet.address] = wallet
        self.books.wallets_by_email[email] = wallet
        created = WalletCreatedData(
            wallet_id=wallet.wallet_id,
            wallet_address=wallet.address,
            trustee_ref=wallet.trustee_ref,
            user_email=email,
            tx_hash=tx.tx_hash,
            created_at=wallet.created_at,
        )
        self.emit("wallet.created", created.model_dump(mode="json"))
        return wallet, True

    def wallet(self, reference: str) -> Wallet:
        """A wallet by its id or its address."""
        wallet = self.books.wallets.get(reference) or self.books.wallets_by_address.get(reference)
        if wallet is None:
            raise not_found("error-wallet-not-found", "Wallet", "walletId", reference)
        return wallet

    def wallet_read(self, wallet: Wallet) -> WalletRead:
        """A wallet with its balances as the ledger has them."""
        account = self.chain.account(wallet.address)
        payout_stroops = self.chain.balance(wallet.address, self.payout_asset)
        return WalletRead(
            wallet_id=wallet.wallet_id,
            wallet_address=wallet.address,
            trustee_ref=wallet.trustee_ref,
            investor_email=wallet.investor_email,
            investor_name=wallet.investor_name,
            kyc_verified=wallet.kyc_verified,
            balance=self._stroops_to_minor(payout_stroops),
            currency=self.payout_asset.code,
            native_balance=amount_text(account.native if account else 0),
            sequence=account.sequence if account else 0,
            tx_hash=wallet.tx.tx_hash,
            created_at=wallet.created_at,
        )

    # -- tokens --------------------------------------------------------------------------------

    def mint(self, request: MintCreate) -> Token:
        """Mint ``fraction_owned`` of an asset to an investor; the token starts pending."""
        holder = self._wallet_at(request.investor_wallet, "investor_wallet")
        asset, is_new_asset = self._asset_for(request)
        self._reserve(asset, request.fraction_owned)
        token_id = _new_id("TKN")
        stellar_asset = Asset(asset.asset_code, self.issuer.public_key)
        needs_trust = asset_key(stellar_asset) not in self._trustlines(holder)

        def mint_to_holder(builder: Any) -> None:
            if needs_trust:
                builder.append_change_trust_op(stellar_asset, source=holder.address)
            builder.append_payment_op(holder.address, stellar_asset, str(request.fraction_owned))

        signers = [self.issuer, holder.keypair] if needs_trust else [self.issuer]
        try:
            tx = self._submit(self.issuer, mint_to_holder, signers, memo=token_id)
        except TrovoTechError:
            asset.allocated -= request.fraction_owned
            raise
        token = Token(
            token_id=token_id,
            asset=asset,
            investor_wallet=holder.address,
            fraction=request.fraction_owned,
            investment_amount=request.invest_amount,
            metadata_hash=_digest(
                {
                    "asset_id": asset.asset_id,
                    "asset_type": asset.asset_type,
                    "asset_metadata": request.asset_metadata,
                }
            ),
            tx=tx,
            created_at=_now(),
        )
        self.books.tokens[token_id] = token
        if is_new_asset:
            self._emit_custody(asset)
        return token

    def confirm_mint(self, token_id: str) -> None:
        """The chain confirmed the mint: the token is confirmed and ``token.minted`` sent."""
        token = self.books.tokens[token_id]
        if token.status == "confirmed":
            return
        token.status = "confirmed"
        token.minted_at = _now()
        minted = TokenMintedData(
            token_id=token.token_id,
            tx_hash=token.tx.tx_hash,
            asset_id=token.asset.asset_id,
            asset_type=token.asset.asset_type,
            asset_code=token.asset.asset_code,
            investor_wallet=token.investor_wallet,
            fraction_owned=float(token.fraction),
            investment_amount=token.investment_amount,
            current_value=token.investment_amount + token.total_returns,
            metadata_hash=token.metadata_hash,
            trustee_ref=token.asset.trustee_ref,
            minted_at=token.minted_at,
        )
        self.emit("token.minted", minted.model_dump(mode="json"))

    def tokens_of(self, wallet_address: str | None) -> list[Token]:
        """The tokens a wallet holds, or every token when no wallet is named."""
        if wallet_address is None:
            return list(self.books.tokens.values())
        self._wallet_at(wallet_address, "wallet")
        return [t for t in self.books.tokens.values() if t.investor_wallet == wallet_address]

    def token_read(self, token: Token) -> TokenRead:
        """A token as the API shows it."""
        return TokenRead(
            token_id=token.token_id,
            status=token.status,
            asset_id=token.asset.asset_id,
            asset_type=token.asset.asset_type,
            asset_code=token.asset.asset_code,
            asset_issuer=self.issuer.public_key,
            investor_wallet=token.investor_wallet,
            fraction_owned=float(token.fraction),
            investment_amount=token.investment_amount,
            current_value=token.investment_amount + token.total_returns,
            total_returns=token.total_returns,
            metadata_hash=token.metadata_hash,
            trustee_ref=token.asset.trustee_ref,
            tx_hash=token.tx.tx_hash,
            created_at=token.created_at,
            minted_at=token.minted_at,
        )

    def mint_read(self, token: Token) -> MintRead:
        """A mint's reply: the token, its envelope and the asset's remaining ownership."""
        return MintRead(
            **self.token_read(token).model_dump(),
            envelope_xdr=token.tx.envelope_xdr,
            network_passphrase=self.chain.passphrase,
            ledger=token.tx.ledger,
            remaining_ownership=float(FULL_OWNERSHIP - token.asset.allocated),
        )

    def _asset_for(self, request: MintCreate) -> tuple[AssetRecord, bool]:
        asset = self.books.assets.get(request.asset_id)
        if asset is None:
            asset = AssetRecord(
                asset_id=request.asset_id,
                asset_type=request.asset_type,
                asset_code=asset_code_for(request.asset_id),
                trustee_ref=_new_id("TRUSTEE"),
            )
            self.books.assets[asset.asset_id] = asset
            return asset, True
        if asset.asset_type != request.asset_type:
            raise conflict(
                "error-asset-type-mismatch",
                f"Asset {asset.asset_id!r} is of type {asset.asset_type!r}.",
                data="asset_type",
            )
        return asset, False

    def _reserve(self, asset: AssetRecord, fraction: Decimal) -> None:
        remaining = FULL_OWNERSHIP - asset.allocated
        if self.settings.enforce_ownership_cap and fraction > remaining:
            raise TrovoTechError(
                422,
                "error-insufficient-remaining-ownership",
                f"Only {remaining}% of asset {asset.asset_id!r} remains.",
                data="fraction_owned",
                remaining=float(remaining),
                allocated=float(asset.allocated),
                requested=float(fraction),
            )
        asset.allocated += fraction

    def _emit_custody(self, asset: AssetRecord) -> None:
        updated = CustodyUpdatedData(
            asset_id=asset.asset_id,
            trustee_ref=asset.trustee_ref,
            status=asset.custody_status,
            updated_at=_now(),
        )
        self.emit("custody.updated", updated.model_dump(mode="json"))

    # -- payouts -------------------------------------------------------------------------------

    def start_payout(self, request: PayoutCreate, will_fail: bool) -> Payout:
        """Accept a distribution; it settles later (:meth:`settle_payout`)."""
        tokens = [self._token(token_id) for token_id in request.token_ids]
        amounts = split_by_largest_remainder(
            request.total_amount, [token.fraction for token in tokens]
        )
        payout = Payout(
            payout_id=_new_id("PAY"),
            period=request.period,
            description=request.description,
            total_amount=request.total_amount,
            distributions=[
                Distribution(
                    token_id=token.token_id, investor_wallet=token.investor_wallet, amount=amount
                )
                for token, amount in zip(tokens, amounts, strict=True)
            ],
            will_fail=will_fail,
            created_at=_now(),
        )
        self.books.payouts[payout.payout_id] = payout
        return payout

    def settle_payout(self, payout_id: str) -> None:
        """Pay every part from the custody wallet in one transaction, or fail the payout."""
        payout = self.books.payouts[payout_id]
        if payout.status != "processing":
            return
        if payout.will_fail:
            self._fail_payout(payout, PAYOUT_FAULT_REASON)
            return
        paid = [part for part in payout.distributions if part.amount > 0]

        def pay_holders(builder: Any) -> None:
            for part in paid:
                builder.append_payment_op(
                    part.investor_wallet, self.payout_asset, self._minor_to_amount(part.amount)
                )

        try:
            payout.tx = self._submit(self.custody, pay_holders, [self.custody], memo=payout_id)
        except TrovoTechError as exc:
            self._fail_payout(payout, exc.message)
            return
        for part in payout.distributions:
            self.books.tokens[part.token_id].total_returns += part.amount
        payout.status = "completed"
        payout.completed_at = _now()
        completed = PayoutCompletedData(
            payout_id=payout.payout_id,
            tx_hash=payout.tx.tx_hash,
            period=payout.period,
            description=payout.description,
            total_amount=payout.total_amount,
            currency=self.payout_asset.code,
            distributions=payout.distributions,
            completed_at=payout.completed_at,
        )
        self.emit("payout.completed", completed.model_dump(mode="json"))

    def payout(self, payout_id: str) -> Payout:
        """A payout by id."""
        payout = self.books.payouts.get(payout_id)
        if payout is None:
            raise not_found("error-payout-not-found", "Payout", "payoutId", payout_id)
        return payout

    def payout_read(self, payout: Payout) -> PayoutRead:
        """A payout as the API shows it."""
        return PayoutRead(
            payout_id=payout.payout_id,
            status=payout.status,
            period=payout.period,
            description=payout.description,
            total_amount=payout.total_amount,
            currency=self.payout_asset.code,
            distributions=payout.distributions,
            tx_hash=payout.tx.tx_hash if payout.tx else None,
            envelope_xdr=payout.tx.envelope_xdr if payout.tx else None,
            reason=payout.reason,
            created_at=payout.created_at,
            completed_at=payout.completed_at,
        )

    def _fail_payout(self, payout: Payout, reason: str) -> None:
        payout.status = "failed"
        payout.reason = reason
        payout.completed_at = _now()
        failed = PayoutFailedData(
            payout_id=payout.payout_id,
            reason=reason,
            period=payout.period,
            total_amount=payout.total_amount,
            failed_at=payout.completed_at,
        )
        self.emit("payout.failed", failed.model_dump(mode="json"))

    # -- transfers -----------------------------------------------------------------------------

    def transfer(self, request: TransferCreate) -> Transfer:
        """Move a confirmed token, whole, from its holder to another custodial wallet."""
        token = self._token(request.token_id)
        if token.status != "confirmed":
            raise conflict(
                "error-token-not-confirmed", "The token's mint is not confirmed yet.", "token_id"
            )
        if request.from_wallet is not None and request.from_wallet != token.investor_wallet:
            raise conflict(
                "error-not-token-holder", "from_wallet does not hold this token.", "from_wallet"
            )
        sender = self._wallet_at(token.investor_wallet, "from_wallet")
        receiver = self._wallet_at(request.to_wallet, "to_wallet")
        if receiver is sender:
            raise bad_request(
                "error-same-wallet", "The token is already in to_wallet.", "to_wallet"
            )
        stellar_asset = Asset(token.asset.asset_code, self.issuer.public_key)
        needs_trust = asset_key(stellar_asset) not in self._trustlines(receiver)

        def move_token(builder: Any) -> None:
            if needs_trust:
                builder.append_change_trust_op(stellar_asset, source=receiver.address)
            builder.append_payment_op(receiver.address, stellar_asset, str(token.fraction))

        signers = [sender.keypair, receiver.keypair] if needs_trust else [sender.keypair]
        transfer_id = _new_id("XFR")
        tx = self._submit(sender.keypair, move_token, signers, memo=transfer_id)
        token.investor_wallet = receiver.address
        transfer = Transfer(transfer_id, token, sender.address, receiver.address, tx, _now())
        self.books.transfers[transfer_id] = transfer
        completed = TransferCompletedData(
            token_id=token.token_id,
            from_wallet=sender.address,
            to_wallet=receiver.address,
            tx_hash=tx.tx_hash,
            asset_id=token.asset.asset_id,
            fraction_owned=float(token.fraction),
            transferred_at=transfer.transferred_at,
        )
        self.emit("transfer.completed", completed.model_dump(mode="json"))
        return transfer

    @staticmethod
    def transfer_read(transfer: Transfer) -> TransferRead:
        """A transfer as the API shows it."""
        return TransferRead(
            transfer_id=transfer.transfer_id,
            token_id=transfer.token.token_id,
            asset_id=transfer.token.asset.asset_id,
            from_wallet=transfer.from_wallet,
            to_wallet=transfer.to_wallet,
            fraction_owned=float(transfer.token.fraction),
            tx_hash=transfer.tx.tx_hash,
            envelope_xdr=transfer.tx.envelope_xdr,
            transferred_at=transfer.transferred_at,
        )

    # -- telemetry and assets ------------------------------------------------------------------

    def sync_telemetry(self, request: TelemetrySync) -> TelemetryRead:
        """Anchor a telemetry snapshot: its hash becomes the asset's telemetry URI."""
        snapshot = {**request.telemetry_data, **(request.model_extra or {})}
        metadata_hash = _digest({"asset_id": request.asset_id, "telemetry": snapshot})
        uri = f"trovotech-sandbox://telemetry/{request.asset_id}/{metadata_hash}"
        asset = self.books.assets.get(request.asset_id)
        if asset is not None:
            asset.telemetry_uri = uri
            asset.telemetry = snapshot
        return TelemetryRead(
            asset_id=request.asset_id, uri=uri, metadata_hash=metadata_hash, synced_at=_now()
        )

    def asset_reads(self) -> list[AssetRead]:
        """Every asset with its allocation."""
        return [
            AssetRead(
                asset_id=asset.asset_id,
                asset_type=asset.asset_type,
                asset_code=asset.asset_code,
                trustee_ref=asset.trustee_ref,
                custody_status=asset.custody_status,
                allocated=float(asset.allocated),
                remaining=float(FULL_OWNERSHIP - asset.allocated),
                telemetry_uri=asset.telemetry_uri,
            )
            for asset in self.books.assets.values()
        ]

    # -- helpers -------------------------------------------------------------------------------

    def _token(self, token_id: str) -> Token:
        token = self.books.tokens.get(token_id)
        if token is None:
            raise not_found("error-token-not-found", "Token", "token_id", token_id)
        return token

    def _wallet_at(self, address: str, parameter: str) -> Wallet:
        wallet = self.books.wallets_by_address.get(address)
        if wallet is None:
            raise not_found("error-wallet-not-found", "Wallet", parameter, address)
        return wallet

    def _trustlines(self, wallet: Wallet) -> dict[str, int]:
        account = self.chain.account(wallet.address)
        return account.trustlines if account else {}

    def _submit(
        self, source: Keypair, build: Callable[[Any], None], signers: list[Keypair], memo: str = ""
    ) -> SignedTransaction:
        try:
            return self.chain.submit(source, build, signers, memo or None)
        except TransactionFailed as exc:
            raise conflict("error-transaction-failed", str(exc), data=exc.code) from exc

    def _minor_to_amount(self, minor: int) -> str:
        return amount_text(minor * STROOPS_PER_UNIT // self._minor_per_unit)

    def _stroops_to_minor(self, stroops: int) -> int:
        return stroops * self._minor_per_unit // STROOPS_PER_UNIT
