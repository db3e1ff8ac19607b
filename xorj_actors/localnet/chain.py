"""The chain: LiteSVM plus what a cluster adds around it (slots, commitment, blockhash window).

A :class:`Chain` lives on one thread (LiteSVM is not thread-safe); only :meth:`Chain.slot` may
be read from elsewhere. Listeners (the PubSub hub) hear about slots, receipts and landings.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from solders.account import Account
from solders.address_lookup_table_account import SlotHashes
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.sysvar import CLOCK, SLOT_HASHES
from solders.token.state import Mint
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, SimulatedTransactionInfo
from solders.transaction_status import (
    TransactionErrorFieldless, TransactionErrorInstructionError, TransactionErrorInsufficientFundsForRent,
)

from xorj_actors.chain import LOOKUP_TABLE_PROGRAM_ID, LoadedAddresses
from xorj_actors.localnet.genesis import TOKEN_PROGRAM_ID, Genesis, apply_genesis, fund
from xorj_actors.localnet.lookup_tables import LookupFailure, load_addresses
from xorj_actors.localnet.settings import LocalnetSettings
from xorj_actors.localnet.token_balances import token_balances

__all__ = ["Chain", "ChainView", "Commitment", "Landed", "LookupFailure", "PreflightFailure", "SignatureFailure"]

Commitment = Literal["processed", "confirmed", "finalized"]
COMMITMENTS: tuple[Commitment, ...] = ("processed", "confirmed", "finalized")

#: Errors after which a transaction is in a block anyway (fee charged); any other error means
#: the leader dropped it.
_LANDS_FAILED = (TransactionErrorInstructionError, TransactionErrorInsufficientFundsForRent)
_MINT_LEN = 82
#: Agave's wording of the errors a preflight commonly meets.
_FIELDLESS_MESSAGES = {
    "BlockhashNotFound": "Blockhash not found",
    "AlreadyProcessed": "This transaction has already been processed",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
}
_FAUCET_LAMPORTS = 10**18  # a billion SOL
#: Entries of the SlotHashes sysvar (Agave's ``MAX_ENTRIES``): a lookup table's creation slot
#: must be among them, and a deactivated table lives until its deactivation slot leaves them.
_SLOT_HASHES = 512
#: Programs and sysvars whose presence in a transaction means it may read SlotHashes.
_READS_SLOT_HASHES = frozenset({SLOT_HASHES, LOOKUP_TABLE_PROGRAM_ID})
#: An account a loader owns (or an executable one) written: a deployment (LiteSVM's send caches it).
_LOADERS = frozenset(map(Pubkey.from_string, (
    "NativeLoader1111111111111111111111111111111", "BPFLoader1111111111111111111111111111111111",
    "BPFLoader2111111111111111111111111111111111", "BPFLoaderUpgradeab1e11111111111111111111111",
    "LoaderV411111111111111111111111111111111111",
)))


class ChainView(Protocol):
    """What the quote service may see of the chain."""

    def slot(self) -> int:
        """The current processed slot; safe from any thread."""
        ...

    def latest_blockhash(self, commitment: Commitment) -> tuple[int, Hash, int]:
        """``(context slot, blockhash, lastValidBlockHeight)``; on the chain's thread only."""
        ...


class PreflightFailure(Exception):
    """Preflight simulation failed (JSON-RPC -32002); ``result`` is the simulation."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


class SignatureFailure(Exception):
    """A signature does not verify (JSON-RPC -32003)."""


def error_json(err: Any) -> Any:
    """A solders ``TransactionError`` in Agave's JSON shape (``{"InstructionError":[2,{"Custom":1}]}``)."""
    if err is None:
        return None
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"]


def error_message(err: Any) -> str:
    """Agave's human-readable summary of a transaction error, for -32002 messages."""
    if isinstance(err, TransactionErrorInstructionError):
        detail = error_json(err)["InstructionError"][1]
        if isinstance(detail, dict) and "Custom" in detail:
            text = f"custom program error: {detail['Custom']:#x}"
        else:
            text = str(detail)
        return f"Transaction simulation failed: Error processing Instruction {err.index}: {text}"
    text = _FIELDLESS_MESSAGES.get(str(error_json(err)), str(error_json(err)))
    return f"Transaction simulation failed: {text}"


@dataclass(slots=True)
class Landed:
    """A transaction in a block."""

    signature: Signature
    slot: int
    tx: VersionedTransaction
    err: Any
    err_json: Any
    fee: int
    logs: list[str]
    units: int
    pre_balances: list[int]
    post_balances: list[int]
    #: Accounts loaded through address lookup tables (v0 messages).
    loaded: LoadedAddresses = LoadedAddresses((), ())
    #: ``meta.preTokenBalances`` / ``postTokenBalances`` (:func:`token_balances`).
    token_balances: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])


class ChainListener(Protocol):
    """Events of the chain, called on the chain's thread."""

    def on_slot(self, slot: int) -> None: ...

    def on_received(self, signature: Signature) -> None: ...

    def on_landed(self, landed: Landed) -> None: ...


class Chain:
    """LiteSVM behind a slot clock, commitment levels and a 150-block blockhash window."""

    def __init__(self, settings: LocalnetSettings, genesis: Genesis) -> None:
        self.settings = settings
        self.genesis = genesis
        self.svm = LiteSVM().with_blockhash_check(False)
        self.svm.warp_to_slot(0)  # LiteSVM starts at a mainnet-like slot; the localnet counts from 0
        apply_genesis(self.svm, genesis)
        self._faucet = Keypair.from_seed(hashlib.sha256(f"{settings.seed}:faucet".encode()).digest())
        fund(self.svm, self._faucet.pubkey(), _FAUCET_LAMPORTS)
        self._slot = 0
        #: The slot LiteSVM's Clock was last moved to (it follows the chain lazily: see _sync_svm).
        self._svm_slot = 0
        self._genesis_time = int(time.time())
        self._blockhashes: dict[Hash, int] = {self.svm.latest_blockhash(): 0}
        self._slot_hashes: dict[int, Hash] = {0: self.svm.latest_blockhash()}
        #: The SlotHashes sysvar's entries, newest first: every slot before the current one.
        self._recent_slots: deque[tuple[int, Hash]] = deque(maxlen=_SLOT_HASHES)
        self._sysvar_slot_hashes: SlotHashes | None = None
        # LiteSVM keeps SlotHashes empty but while a transaction that may read it runs: a full
        # sysvar makes every later Clock update cost ~5x (it is rewritten with the others).
        self.svm.set_slot_hashes([])
        self.landed: dict[Signature, Landed] = {}
        self._landing_order: deque[Landed] = deque()
        #: Accepted but not yet landed (the "land late" fault): due slot -> transactions.
        self._late: dict[int, list[VersionedTransaction]] = {}
        self.listeners: list[ChainListener] = []
        #: Faults on transactions, set by the runner: the next N submissions are dropped or late.
        self.drop_next = 0
        self.late_next = 0
        self.late_slots = 0

    # -- clock and commitment -------------------------------------------------------------

    def slot(self) -> int:
        """The current processed slot (a plain int read, safe from any thread)."""
        return self._slot

    def lag(self, commitment: Commitment) -> int:
        """Slots a block waits before it reaches ``commitment``."""
        if commitment == "processed":
            return 0
        return self.settings.confirmed_lag if commitment == "confirmed" else self.settings.finalized_lag

    def commitment_slot(self, commitment: Commitment) -> int:
        """The newest slot at ``commitment`` (slot 0 stands in while none has reached it yet)."""
        return max(self._slot - self.lag(commitment), 0)

    def slot_reached(self, slot: int, commitment: Commitment) -> bool:
        """Whether the block of ``slot`` has reached ``commitment``."""
        return self._slot - slot >= self.lag(commitment)

    def block_time(self, slot: int) -> int:
        return self._genesis_time + slot * self.settings.slot_ms // 1000

    def advance(self, slots: int = 1) -> int:
        """Produce ``slots`` new slots, each with a new blockhash; returns the new slot.

        A slot costs a few microseconds: its blockhash chains from the previous one (as a bank's
        does from its parent), and LiteSVM's sysvars catch up only when a transaction runs.
        """
        for _ in range(slots):
            previous = self._slot_hashes[self._slot]
            self._recent_slots.appendleft((self._slot, previous))
            self._slot += 1
            blockhash = Hash(hashlib.sha256(bytes(previous) + self._slot.to_bytes(8, "little")).digest())
            self._blockhashes[blockhash] = self._slot
            self._slot_hashes[self._slot] = blockhash
            old = self._slot - self.settings.blockhash_valid_blocks - self.settings.finalized_lag - 1
            self._blockhashes.pop(self._slot_hashes.pop(old, Hash.default()), None)
            self._sysvar_slot_hashes = None
            for tx in self._late.pop(self._slot, ()):
                self._execute(tx)
            forget_before = self._slot - self.settings.history_slots
            while self._landing_order and self._landing_order[0].slot < forget_before:
                del self.landed[self._landing_order.popleft().signature]
            for listener in self.listeners:
                listener.on_slot(self._slot)
        return self._slot

    def latest_blockhash(self, commitment: Commitment = "finalized") -> tuple[int, Hash, int]:
        """``(context slot, blockhash, lastValidBlockHeight)`` at ``commitment``."""
        slot = self.commitment_slot(commitment)
        return self._slot, self._slot_hashes[slot], slot + self.settings.blockhash_valid_blocks

    def blockhash_valid(self, blockhash: Hash) -> bool:
        created = self._blockhashes.get(blockhash)
        return created is not None and self._slot - created <= self.settings.blockhash_valid_blocks

    def status_of(self, landed: Landed) -> tuple[int | None, Commitment]:
        """``(confirmations, confirmationStatus)``: confirmations are null once finalized."""
        depth = self._slot - landed.slot
        if depth >= self.settings.finalized_lag:
            return None, "finalized"
        return depth, "confirmed" if depth >= self.settings.confirmed_lag else "processed"

    # -- transactions ---------------------------------------------------------------------

    def loaded_addresses(self, tx: VersionedTransaction) -> LoadedAddresses:
        """The accounts ``tx`` loads through lookup tables now; :class:`LookupFailure` if they do
        not resolve (Agave refuses such a transaction before preflight, ``skipPreflight`` or not)."""
        if not isinstance(tx.message, MessageV0) or not tx.message.address_table_lookups:
            return LoadedAddresses((), ())
        return load_addresses(self.svm, tx, self._slot, self._slot_hashes_sysvar)

    def _slot_hashes_sysvar(self) -> SlotHashes:
        """The SlotHashes sysvar now (built once a slot, when a deactivated table asks for it)."""
        if self._sysvar_slot_hashes is None:
            self._sysvar_slot_hashes = SlotHashes(list(self._recent_slots))
        return self._sysvar_slot_hashes

    def simulate(
        self,
        tx: VersionedTransaction,
        *,
        sig_verify: bool = True,
        replace_blockhash: bool = False,
        post_accounts: dict[Pubkey, Account | None] | None = None,
        loaded: LoadedAddresses | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Simulate ``tx`` on the processed state: ``(error, Agave's RpcSimulateTransactionResult)``.

        Raises :class:`SignatureFailure` first when ``sig_verify`` and a signature is bad, as Agave does.
        ``post_accounts``, when given, is filled for its keys as Agave's ``accounts`` config does:
        the simulated state of the transaction's accounts, the current state of any other, and
        every one ``None`` when the simulation failed. ``loaded``: ``tx``'s lookups, resolved by
        the caller a moment ago (else resolved here).
        """
        err, result, _ = self._simulate(tx, sig_verify, replace_blockhash, post_accounts, loaded)
        return err, result

    def _simulate(
        self, tx: VersionedTransaction, sig_verify: bool = True, replace_blockhash: bool = False,
        post_accounts: dict[Pubkey, Account | None] | None = None, loaded: LoadedAddresses | None = None,
    ) -> tuple[Any, dict[str, Any], SimulatedTransactionInfo | None]:
        """:meth:`simulate`, plus LiteSVM's result when the run succeeded (for :meth:`_execute`)."""
        if loaded is None:
            self.loaded_addresses(tx)
        if sig_verify and not all(tx.verify_with_results()):
            raise SignatureFailure("Transaction signature verification failure")
        if tx.signatures[0] in self.landed:
            return (*self._failed(TransactionErrorFieldless.AlreadyProcessed, post_accounts), None)
        if not replace_blockhash and not self.blockhash_valid(tx.message.recent_blockhash):
            return (*self._failed(TransactionErrorFieldless.BlockhashNotFound, post_accounts), None)
        result = self._run(tx, simulate=True, verify=False)  # verified above when asked
        meta = result.meta()
        err = result.err() if isinstance(result, FailedTransactionMetadata) else None
        if post_accounts is not None:
            after = {} if err is not None else dict(result.post_accounts())
            for key in post_accounts:
                post_accounts[key] = None if err is not None else after[key] if key in after else self.account(key)
        return (*_simulated(err, meta.logs(), meta.compute_units_consumed()), None if err is not None else result)

    @staticmethod
    def _failed(err: Any, post_accounts: dict[Pubkey, Account | None] | None) -> tuple[Any, dict[str, Any]]:
        for key in post_accounts or ():
            post_accounts[key] = None  # type: ignore[index]
        return _simulated(err)

    def submit(self, tx: VersionedTransaction, *, preflight: bool) -> Signature:
        """Accept ``tx`` as ``sendTransaction`` does.

        With preflight a transaction that would fail raises :class:`SignatureFailure` or
        :class:`PreflightFailure` and changes nothing. Without it, whatever a leader would
        drop (stale blockhash, bad signature, fee payer short) is dropped silently.
        """
        signature = tx.signatures[0]
        loaded = self.loaded_addresses(tx)
        simulated = None
        if preflight:
            err, result, simulated = self._simulate(tx, loaded=loaded)
            if err is not None:
                raise PreflightFailure(error_message(err), result)
        for listener in self.listeners:
            listener.on_received(signature)
        if self.drop_next:
            self.drop_next -= 1
        elif self.late_next:
            self.late_next -= 1
            self._late.setdefault(self._slot + max(self.late_slots, 1), []).append(tx)
        else:
            # Preflight verified and ran these exact bytes on this same state: neither again.
            self._execute(tx, verified=preflight, loaded=loaded, simulated=simulated)
        return signature

    def land(self, tx: VersionedTransaction, *, verified: bool = False, preflight: bool = True) -> Landed:
        """Execute ``tx`` now, past every fault (for the localnet's own set-up transactions);
        :class:`PreflightFailure` if it would fail, and then nothing changed. ``verified``: the
        caller made or checked every signature (the localnet's own keys): none is verified again.
        ``preflight=False``: the caller checked that ``tx`` succeeds (one LiteSVM run, not two);
        should it fail all the same it lands failed, fee charged, and PreflightFailure is raised."""
        loaded = self.loaded_addresses(tx)
        simulated = None
        if preflight:
            err, result, simulated = self._simulate(tx, not verified, loaded=loaded)
            if err is not None:
                raise PreflightFailure(error_message(err), result)
        self._execute(tx, verified=verified or preflight, loaded=loaded, simulated=simulated)
        landed = self.landed.get(tx.signatures[0])
        if landed is None or landed.err is not None:
            err = TransactionErrorFieldless.BlockhashNotFound if landed is None else landed.err
            raise PreflightFailure(error_message(err), _simulated(err)[1])
        return landed

    def simulate_bundle(
        self, txs: list[VersionedTransaction], watch: tuple[Pubkey, ...] = ()
    ) -> tuple[tuple[int, Any] | None, dict[Pubkey, int]]:
        """Simulate ``txs`` in order, each on the state the ones before it leave, and change
        nothing: ``(None, balances of watch after the last)``, or ``((index, error), {})`` for
        the first that fails (a transaction error, :class:`SignatureFailure`, :class:`LookupFailure`).
        """
        saved: dict[Pubkey, Account | None] = {}
        try:
            for i, tx in enumerate(txs):
                try:
                    loaded = self.loaded_addresses(tx)
                    post: dict[Pubkey, Account | None] = dict.fromkeys(
                        [*tx.message.account_keys, *loaded.writable, *loaded.readonly]
                    )
                    err, _ = self.simulate(tx, post_accounts=post)
                except (SignatureFailure, LookupFailure) as exc:
                    return (i, exc), {}
                if err is not None:
                    return (i, err), {}
                # Carry this transaction's effects to the next one's simulation; undone below.
                for key, account in post.items():
                    current = self.svm.get_account(key)
                    if account is not None and account != current:
                        saved.setdefault(key, current)
                        self.svm.set_account(key, account)
            return None, {key: self.svm.get_balance(key) or 0 for key in watch}
        finally:
            for key, account in saved.items():
                # LiteSVM reads a zero-lamport account as absent: that restores "no account".
                self.svm.set_account(key, account if account is not None else Account(0, b"", Pubkey.default()))

    def execute_bundle(self, txs: list[VersionedTransaction]) -> None:
        """Land ``txs`` in order in the current slot, past every fault; call right after a
        successful :meth:`simulate_bundle` of the same transactions (so each one succeeds)."""
        for tx in txs:
            for listener in self.listeners:
                listener.on_received(tx.signatures[0])
            self._execute(tx, verified=True)

    def _execute(
        self, tx: VersionedTransaction, *, verified: bool = False, loaded: LoadedAddresses | None = None,
        simulated: SimulatedTransactionInfo | None = None,
    ) -> None:
        """Land ``tx`` in the current slot (or drop it, as a leader would). ``simulated``: its
        successful simulation on this very state a moment ago; its post-states are written
        instead of running it again (LiteSVM's send writes the same accounts the same way),
        unless it touched a program account (a deployment: LiteSVM's send runs then)."""
        signature = tx.signatures[0]
        if signature in self.landed or not self.blockhash_valid(tx.message.recent_blockhash):
            return
        try:
            loaded = self.loaded_addresses(tx) if loaded is None else loaded
        except LookupFailure:
            return  # its tables changed while it waited: a leader drops it
        keys = [*tx.message.account_keys, *loaded.writable, *loaded.readonly]
        pre, pre_tokens = [self.svm.get_balance(k) or 0 for k in keys], token_balances(self.svm, keys)
        post_states = simulated.post_accounts() if simulated is not None else None
        if post_states is not None and not any(a.executable or a.owner in _LOADERS for _, a in post_states):
            for key, account in post_states:
                self.svm.set_account(key, account)
            result = simulated.meta()  # type: ignore[union-attr]
        else:
            result = self._run(tx, simulate=False, verify=not verified)
        if isinstance(result, FailedTransactionMetadata):
            err, meta = result.err(), result.meta()
            if not isinstance(err, _LANDS_FAILED):
                return
        else:
            err, meta = None, result
        landed = Landed(
            signature=signature,
            slot=self._slot,
            tx=tx,
            err=err,
            err_json=error_json(err),
            fee=meta.fee(),
            logs=meta.logs(),
            units=meta.compute_units_consumed(),
            pre_balances=pre,
            post_balances=[self.svm.get_balance(k) or 0 for k in keys],
            loaded=loaded, token_balances=(pre_tokens, token_balances(self.svm, keys)),
        )
        self.landed[signature] = landed
        self._landing_order.append(landed)
        for listener in self.listeners:
            listener.on_landed(landed)

    def _sync_svm(self) -> None:
        """Move LiteSVM's Clock to the current slot (the slot clock does not, to stay cheap)."""
        if self._svm_slot != self._slot:
            self.svm.warp_to_slot(self._slot)
            self._svm_slot = self._slot

    def _run(self, tx: VersionedTransaction, *, simulate: bool, verify: bool) -> Any:
        """Run ``tx`` in LiteSVM (simulate it, or send it) with its sysvars as of now; LiteSVM
        checks the signatures only if ``verify``."""
        self._sync_svm()
        slot_hashes = _reads_slot_hashes(tx)
        if slot_hashes:
            self.svm.set_slot_hashes(list(self._recent_slots))
        if not verify:
            self.svm.with_sigverify(False)
        try:
            return self.svm.simulate_transaction(tx) if simulate else self.svm.send_transaction(tx)
        finally:
            if not verify:
                self.svm.with_sigverify(True)
            if slot_hashes:
                self.svm.set_slot_hashes([])

    def account(self, key: Pubkey) -> Account | None:
        """The account at ``key`` now (the lazily kept sysvars brought up to date first)."""
        if key == CLOCK:
            self._sync_svm()
        elif key == SLOT_HASHES:
            self.svm.set_slot_hashes(list(self._recent_slots))
            try:
                return self.svm.get_account(key)
            finally:
                self.svm.set_slot_hashes([])
        return self.svm.get_account(key)

    def decimals_of(self, mint: Pubkey) -> int | None:
        """Decimals of ``mint`` (a genesis token or any SPL mint on chain), else ``None``."""
        try:
            return self.genesis.token(mint).decimals
        except KeyError:
            account = self.svm.get_account(mint)
            if account is None or account.owner != TOKEN_PROGRAM_ID or len(account.data) != _MINT_LEN:
                return None
            return Mint.from_bytes(bytes(account.data)).decimals

    def airdrop(self, pubkey: Pubkey, lamports: int) -> Signature:
        """Send ``lamports`` to ``pubkey`` from the faucet, as a real transfer that lands."""
        blockhash = self._slot_hashes[self._slot]
        ix = transfer(TransferParams(from_pubkey=self._faucet.pubkey(), to_pubkey=pubkey, lamports=lamports))
        tx = VersionedTransaction(MessageV0.try_compile(self._faucet.pubkey(), [ix], [], blockhash), [self._faucet])
        self._execute(tx)
        return tx.signatures[0]


def _reads_slot_hashes(tx: VersionedTransaction) -> bool:
    return not _READS_SLOT_HASHES.isdisjoint(tx.message.account_keys)


#: Agave's RpcSimulateTransactionResult, every field in its order (what to_json writes).
_SIMULATED = json.loads(RpcSimulateTransactionResult(err=None, logs=[], units_consumed=0).to_json())


def _simulated(err: Any, logs: list[str] | None = None, units: int = 0) -> tuple[Any, dict[str, Any]]:
    return err, {**_SIMULATED, "err": error_json(err), "logs": list(logs or ()), "unitsConsumed": units}
