"""The market maker's desk behind the localnet's Jupiter APIs: accounts, legs, lookup tables.

The localnet has no aggregator program, yet a Swap API route must be a real transaction that only
the wallet signs. The desk makes that possible with SPL Token alone (docs/LOCALNET.md, "Jupiter's
APIs on the localnet"):

- for each wallet, an SPL multisig account, 1 of {market maker, wallet}, and per mint an escrow
  token account owned by that multisig. Quoting a route moves exactly the quoted outputs from the
  market maker's associated account into the wallet's escrows (a real transaction the market
  maker signs); the route's legs out of the escrows are signed by the wallet as that multisig's
  signer. The escrows are not the wallet's (their owner is the multisig), so the effect check sees
  only the wallet's own accounts move. A delegate approval, the other way, would leave the wallet
  delegate of a market maker's account, which the effect check rightly refuses;
- wrapped SOL is the real native mint (placed at start-up), and the market maker holds a wSOL
  account with plenty of lamports;
- lookup tables made through the real program: one of the desk's shared accounts, one per wallet
  of its escrows; a table is offered only from the slot after its last extension.

Everything here runs on the localnet's thread.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount, TokenAccountState
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID

from xorj_actors.localnet.chain import Chain
from xorj_actors.localnet.genesis import TOKEN_PROGRAM_ID, Genesis, TokenSpec
from xorj_actors.localnet.table_admin import TableAdmin
from xorj_actors.programs import ASSOCIATED_TOKEN_PROGRAM_ID, NATIVE_MINT

__all__ = [
    "ASSOCIATED_TOKEN_PROGRAM_ID",
    "NATIVE_MINT",
    "Desk",
    "Leg",
    "approve_ix",
    "associated_account",
    "escrow_address",
    "close_account_ix",
    "create_ata_ix",
    "set_owner_ix",
    "sync_native_ix",
    "system_transfer_ix",
    "transfer_ix",
]

_MULTISIG_LEN = 355
_NATIVE_DECIMALS = 9
#: Lamports in the market maker's wSOL account (its inventory of SOL to sell).
_MM_WSOL_LAMPORTS = 1_000_000 * 10**9


#: The associated token account of ``(wallet, mint)``: a program-address search (~30 us), done once.
associated_account = functools.lru_cache(maxsize=1 << 16)(get_associated_token_address)


def _derived(*parts: bytes) -> Pubkey:
    # Accounts the desk places itself: any 32 bytes will do, nobody signs for them.
    return Pubkey(hashlib.sha256(b"xorj-localnet-desk:" + b":".join(parts)).digest())


def escrow_address(wallet: Pubkey, mint: Pubkey) -> Pubkey:
    """Where the desk places ``wallet``'s escrow of ``mint`` (the market maker's inventory until a
    route spends it: a quote that is never sent leaves it there)."""
    return _derived(b"escrow", bytes(wallet), bytes(mint))


def transfer_ix(
    source: Pubkey, mint: Pubkey, dest: Pubkey, owner: Pubkey, amount: int, decimals: int, signers: Sequence[Pubkey] = ()
) -> Instruction:
    """SPL Token ``TransferChecked`` (12); ``signers`` when ``owner`` is a multisig."""
    metas = [
        AccountMeta(source, False, True),
        AccountMeta(mint, False, False),
        AccountMeta(dest, False, True),
        AccountMeta(owner, not signers, False),
        *(AccountMeta(s, True, False) for s in signers),
    ]
    return Instruction(TOKEN_PROGRAM_ID, bytes([12]) + struct.pack("<QB", amount, decimals), metas)


def create_ata_ix(payer: Pubkey, wallet: Pubkey, mint: Pubkey) -> Instruction:
    """Associated Token Account ``CreateIdempotent`` (data ``01``), as Jupiter's setup sends it."""
    metas = [
        AccountMeta(payer, True, True),
        AccountMeta(associated_account(wallet, mint), False, True),
        AccountMeta(wallet, False, False),
        AccountMeta(mint, False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
    ]
    return Instruction(ASSOCIATED_TOKEN_PROGRAM_ID, b"\x01", metas)


def sync_native_ix(account: Pubkey) -> Instruction:
    """SPL Token ``SyncNative`` (17)."""
    return Instruction(TOKEN_PROGRAM_ID, bytes([17]), [AccountMeta(account, False, True)])


def close_account_ix(account: Pubkey, dest: Pubkey, owner: Pubkey) -> Instruction:
    """SPL Token ``CloseAccount`` (9): the lamports go to ``dest``."""
    metas = [AccountMeta(account, False, True), AccountMeta(dest, False, True), AccountMeta(owner, True, False)]
    return Instruction(TOKEN_PROGRAM_ID, bytes([9]), metas)


def approve_ix(account: Pubkey, delegate: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    """SPL Token ``Approve`` (4)."""
    metas = [AccountMeta(account, False, True), AccountMeta(delegate, False, False), AccountMeta(owner, True, False)]
    return Instruction(TOKEN_PROGRAM_ID, bytes([4]) + amount.to_bytes(8, "little"), metas)


def set_owner_ix(account: Pubkey, owner: Pubkey, new_owner: Pubkey) -> Instruction:
    """SPL Token ``SetAuthority`` (6) of the account owner (type 2) to ``new_owner``."""
    metas = [AccountMeta(account, False, True), AccountMeta(owner, True, False)]
    return Instruction(TOKEN_PROGRAM_ID, bytes([6, 2, 1]) + bytes(new_owner), metas)


def system_transfer_ix(source: Pubkey, dest: Pubkey, lamports: int) -> Instruction:
    """System ``Transfer``."""
    return transfer(TransferParams(from_pubkey=source, to_pubkey=dest, lamports=lamports))


@dataclass(frozen=True, slots=True)
class Leg:
    """What the market maker pays the wallet on one hop: ``amount`` of ``mint`` (``decimals`` for
    ``TransferChecked``)."""

    mint: Pubkey
    decimals: int
    amount: int


def _by_mint(legs: Sequence[Leg]) -> dict[Pubkey, int]:
    amounts: dict[Pubkey, int] = {}
    for leg in legs:
        amounts[leg.mint] = amounts.get(leg.mint, 0) + leg.amount
    return amounts


class Desk:
    """The market maker's accounts and tables for the Jupiter-shaped routes."""

    def __init__(self, genesis: Genesis, chain: Chain, tables: TableAdmin) -> None:
        self.genesis = genesis
        self.chain = chain
        self.tables = tables
        self.mm: Keypair = genesis.market_maker
        self.mm_key = genesis.market_maker.pubkey()
        self._ready = False
        self._shared_table: Pubkey | None = None
        self._wallet_tables: dict[Pubkey, Pubkey] = {}
        self._multisigs: set[Pubkey] = set()
        self._fundings = 0

    # -- accounts ----------------------------------------------------------------------------

    def ready(self) -> None:
        """Place the native mint and the market maker's wSOL account once (no transaction needed:
        the native mint is a genesis account on every cluster)."""
        if self._ready:
            return
        svm = self.chain.svm
        if svm.get_account(NATIVE_MINT) is None:
            self._place(NATIVE_MINT, bytes(Mint(None, 0, _NATIVE_DECIMALS, True)))
        wsol = self.mm_account(NATIVE_MINT)
        if svm.get_account(wsol) is None:
            rent = svm.minimum_balance_for_rent_exemption(165)
            data = bytes(TokenAccount(NATIVE_MINT, self.mm_key, _MM_WSOL_LAMPORTS, None, TokenAccountState.Initialized, rent, 0))
            svm.set_account(wsol, Account(rent + _MM_WSOL_LAMPORTS, data, TOKEN_PROGRAM_ID, False, 0))
        self._ready = True

    def _place(self, key: Pubkey, data: bytes) -> None:
        lamports = self.chain.svm.minimum_balance_for_rent_exemption(len(data))
        self.chain.svm.set_account(key, Account(lamports, data, TOKEN_PROGRAM_ID, False, 0))

    def mm_account(self, mint: Pubkey) -> Pubkey:
        """The market maker's associated token account of ``mint``."""
        return associated_account(self.mm_key, mint)

    def multisig(self, wallet: Pubkey) -> Pubkey:
        """The 1-of-{market maker, wallet} multisig that owns the wallet's escrows (placed once)."""
        key = _derived(b"multisig", bytes(wallet))
        if key not in self._multisigs:
            if self.chain.svm.get_account(key) is None:
                signers = [self.mm_key, wallet] + [Pubkey.default()] * 9
                self._place(key, bytes([1, 2, 1]) + b"".join(bytes(s) for s in signers))
            self._multisigs.add(key)
        return key

    def escrow(self, wallet: Pubkey, mint: Pubkey) -> Pubkey:
        """The wallet's escrow of ``mint`` (owner: its multisig), placed empty on first use."""
        key = escrow_address(wallet, mint)
        if self.chain.svm.get_account(key) is None:
            owner = self.multisig(wallet)
            native = self.chain.svm.minimum_balance_for_rent_exemption(165) if mint == NATIVE_MINT else None
            self._place(key, bytes(TokenAccount(mint, owner, 0, None, TokenAccountState.Initialized, native, 0)))
        return key

    def exists(self, key: Pubkey) -> bool:
        """Whether ``key`` is an account on chain now (one with lamports)."""
        account = self.chain.svm.get_account(key)
        return account is not None and account.lamports > 0

    def fund_escrows(self, wallet: Pubkey, legs: Sequence[Leg]) -> None:
        """Move exactly each leg's amount from the market maker to the wallet's escrow: one real
        transaction the market maker signs (PreflightFailure if its inventory is short)."""
        ixs = [
            transfer_ix(self.mm_account(leg.mint), leg.mint, self.escrow(wallet, leg.mint), self.mm_key, leg.amount, leg.decimals)
            for leg in legs
        ]
        # A memo numbering the funding: two equal routes in one slot are still two transactions.
        self._fundings += 1
        ixs.append(Instruction(MEMO_PROGRAM_ID, f"xorj-localnet desk funding {self._fundings}".encode(), []))
        _, blockhash, _ = self.chain.latest_blockhash("processed")
        message = MessageV0.try_compile(self.mm_key, ixs, [], blockhash)
        # The market maker is the only signer: its signature of the message, as the constructor
        # would make it, without the constructor's key derivation (about as costly as signing).
        signed = VersionedTransaction.populate(message, [self.mm.sign_message(to_bytes_versioned(message))])
        # Signed just now; with the inventory there, nothing else can make it fail (the fee payer
        # holds a billion SOL, each escrow exists), so the preflight run is only for a short one.
        short = any(self._inventory(mint) < amount for mint, amount in _by_mint(legs).items())
        self.chain.land(signed, verified=True, preflight=short)

    def _inventory(self, mint: Pubkey) -> int:
        """The market maker's balance of ``mint`` (its associated account's amount); -1 if that
        account is missing or not an initialized token account of ``mint``."""
        account = self.chain.svm.get_account(self.mm_account(mint))
        if account is None or account.owner != TOKEN_PROGRAM_ID:
            return -1
        data = bytes(account.data)
        if len(data) != 165 or data[:32] != bytes(mint) or data[108] != int(TokenAccountState.Initialized):
            return -1
        return int.from_bytes(data[64:72], "little")

    def decimals(self, mint: Pubkey) -> int:
        """The decimals of ``mint`` (9 for the native mint)."""
        return _NATIVE_DECIMALS if mint == NATIVE_MINT else self.genesis.token(mint).decimals

    # -- lookup tables -----------------------------------------------------------------------

    def shared_accounts(self) -> list[Pubkey]:
        mints = [t.mint for t in self.genesis.tokens] + [NATIVE_MINT]
        return [TOKEN_PROGRAM_ID, SYSTEM_PROGRAM_ID, ASSOCIATED_TOKEN_PROGRAM_ID, *mints, *(self.mm_account(m) for m in mints)]

    def prepare_tables(self, wallet: Pubkey | None = None) -> None:
        """Create the shared table (and the wallet's) through the program if not made yet."""
        self.ready()
        if self._shared_table is None:
            self._shared_table = self.tables.create(self.shared_accounts())
        if wallet is not None and wallet not in self._wallet_tables:
            mints = [t.mint for t in self.genesis.tokens] + [NATIVE_MINT]
            escrows = [self.escrow(wallet, m) for m in mints]
            atas = [associated_account(wallet, m) for m in mints]
            # Its own authority: a table's address derives from (authority, recent slot), so one
            # authority makes one table a slot.
            authority = Keypair.from_seed(hashlib.sha256(b"xorj-localnet-desk-table:" + bytes(wallet)).digest())
            self._wallet_tables[wallet] = self.tables.create([self.multisig(wallet), *escrows, *atas], authority)

    def warm_tables(self, wallet: Pubkey) -> list[Pubkey]:
        """The tables usable in the current slot (an address is usable from the slot after it was added)."""
        keys = [k for k in (self._shared_table, self._wallet_tables.get(wallet)) if k is not None]
        slot = self.chain.slot()
        warm = []
        for key in keys:
            table = self.tables.read(key)
            if table is not None and not table.deactivated and table.last_extended_slot < slot:
                warm.append(key)
        return warm

    def token(self, mint: Pubkey) -> TokenSpec:
        """The genesis token priced for ``mint`` (the native mint is priced as the "SOL" token)."""
        if mint == NATIVE_MINT:
            return self.genesis.token("SOL")
        return self.genesis.token(mint)
