"""The faucet: mints the sandbox controls, and SOL and tokens for any wallet.

Everything the faucet does is an ordinary transaction on the chain (the treasury pays, the mint
authority signs), so its effects show up in ``getTransaction`` and balances like anything else.
The two USDC-like mints are created at start-up from fixed keypairs; further mints get fresh
keypairs. The faucet never hands out the mint authority's key: it mints on request instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to_checked,
)
from spl.token.models import InitializeMint2Params, MintToCheckedParams

from sandboxes.solana_rpc.chain import MEMO_PROGRAM, Chain
from sandboxes.solana_rpc.config import USDC_2022_MINT_SEED, USDC_MINT_SEED, sandbox_keypair
from sandboxes.solana_rpc.tokens import (
    MINT_SIZE,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    decode_mint,
)

USDC_DECIMALS = 6


class UnknownMint(LookupError):
    """The faucet holds no authority over this mint."""


@dataclass(frozen=True)
class SandboxMint:
    """A mint the faucet can mint from."""

    address: Pubkey
    decimals: int
    program: Pubkey
    label: str

    @property
    def program_name(self) -> Literal["spl-token", "spl-token-2022"]:
        return "spl-token-2022" if self.program == TOKEN_2022_PROGRAM else "spl-token"


@dataclass(frozen=True)
class Funding:
    """What one ``fund`` call did."""

    signature: Signature
    owner: Pubkey
    lamports: int
    mint: SandboxMint | None
    token_account: Pubkey | None
    amount: int


class Faucet:
    """Creates mints and funds wallets through ordinary transactions on ``chain``."""

    def __init__(self, chain: Chain, mint_authority: Keypair) -> None:
        self._chain = chain
        self._authority = mint_authority
        self._mints: dict[Pubkey, SandboxMint] = {}
        self._fundings = 0

    @property
    def mint_authority(self) -> Pubkey:
        return self._authority.pubkey()

    @property
    def mints(self) -> list[SandboxMint]:
        return list(self._mints.values())

    def bootstrap(self) -> None:
        """Create the two USDC-like mints at their fixed addresses."""
        self.create_mint(
            USDC_DECIMALS, TOKEN_PROGRAM, "USDC (sandbox)", sandbox_keypair(USDC_MINT_SEED)
        )
        self.create_mint(
            USDC_DECIMALS,
            TOKEN_2022_PROGRAM,
            "USDC (sandbox, Token-2022)",
            sandbox_keypair(USDC_2022_MINT_SEED),
        )

    def create_mint(
        self, decimals: int, program: Pubkey, label: str, keypair: Keypair | None = None
    ) -> SandboxMint:
        """A new initialized mint under ``program`` whose authority is the faucet's."""
        mint_keypair = keypair or Keypair()
        mint = mint_keypair.pubkey()
        treasury = self._chain.treasury.pubkey()
        space = CreateAccountParams(
            from_pubkey=treasury,
            to_pubkey=mint,
            lamports=self._chain.rent_exempt_minimum(MINT_SIZE),
            space=MINT_SIZE,
            owner=program,
        )
        initialize = InitializeMint2Params(
            decimals=decimals, program_id=program, mint=mint, mint_authority=self.mint_authority
        )
        self._chain.submit([create_account(space), initialize_mint2(initialize)], [mint_keypair])
        created = SandboxMint(mint, decimals, program, label)
        self._mints[mint] = created
        return created

    def mint(self, address: Pubkey) -> SandboxMint:
        found = self._mints.get(address)
        if found is None:
            raise UnknownMint(str(address))
        return found

    def fund(
        self, owner: Pubkey, lamports: int, mint_address: Pubkey | None, amount: int
    ) -> Funding:
        """One transaction: ``lamports`` to ``owner`` and ``amount`` of the mint to its ATA."""
        treasury = self._chain.treasury.pubkey()
        self._fundings += 1
        # The memo makes each funding its own transaction, even when two are alike.
        instructions = [Instruction(MEMO_PROGRAM, f"faucet {self._fundings}".encode(), [])]
        if lamports:
            params = TransferParams(from_pubkey=treasury, to_pubkey=owner, lamports=lamports)
            instructions.append(transfer(params))
        mint = self.mint(mint_address) if mint_address is not None else None
        token_account: Pubkey | None = None
        signers: list[Keypair] = []
        if mint is not None:
            token_account = get_associated_token_address(owner, mint.address, mint.program)
            instructions += self._token_instructions(owner, mint, token_account, amount)
            signers = [self._authority] if amount else []
        signature = self._chain.submit(instructions, signers)
        return Funding(signature, owner, lamports, mint, token_account, amount)

    def _token_instructions(
        self, owner: Pubkey, mint: SandboxMint, token_account: Pubkey, amount: int
    ) -> list[Instruction]:
        treasury = self._chain.treasury.pubkey()
        ata = create_idempotent_associated_token_account(
            treasury, owner, mint.address, mint.program
        )
        if not amount:
            return [ata]
        issue = MintToCheckedParams(
            program_id=mint.program,
            mint=mint.address,
            dest=token_account,
            mint_authority=self.mint_authority,
            amount=amount,
            decimals=mint.decimals,
        )
        return [ata, mint_to_checked(issue)]

    def supply(self, mint: SandboxMint) -> int:
        """The mint's current supply, read from the chain."""
        account = self._chain.account(mint.address)
        state = decode_mint(account) if account is not None else None
        return state.supply if state is not None else 0
