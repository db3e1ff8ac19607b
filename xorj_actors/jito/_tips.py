"""Pure pieces of a Jito send: the tip's size and transfer, the ``jitodontfront`` mark, its rule.

- The tip is a System transfer to one of the tip accounts (``getTipAccounts``). Jito warns never
  to reach a tip account through an address lookup table: compile, then check
  :func:`tip_is_static` (or leave out the tables :func:`tables_without` names).
- Sandwich protection (docs.jito.wtf, "Sandwich Mitigation"): a read-only account whose base58
  text starts with ``jitodontfront``, in any instruction. The block engine then refuses any
  bundle in which that transaction is not first; several such transactions may lead a bundle
  if they are contiguous from index 0 and each shares a signer with the first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from xorj_actors.jito._answers import TipFloor
from xorj_actors.jito.settings import DONT_FRONT_PREFIX, MIN_TIP_LAMPORTS, TipPercentile

__all__ = [
    "bundle_id",
    "dont_front_problem",
    "is_dont_front",
    "tables_without",
    "tip_is_static",
    "tip_lamports",
    "tip_transfer",
    "with_dont_front",
]


def tip_lamports(floor: TipFloor, percentile: TipPercentile, minimum: int, maximum: int) -> int:
    """The tip: the tip floor's landed tip at ``percentile``, kept within ``[minimum, maximum]``.

    Raises:
        ValueError: a negative bound, ``minimum`` under Jito's 1,000 lamports, or
            ``minimum > maximum``.
    """
    for name, value in (("minimum", minimum), ("maximum", maximum)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
    if not MIN_TIP_LAMPORTS <= minimum <= maximum:
        raise ValueError(f"need {MIN_TIP_LAMPORTS} <= minimum <= maximum, got {minimum}, {maximum}")
    return min(max(floor.at(percentile), minimum), maximum)


def tip_transfer(payer: Pubkey, tip_account: Pubkey, lamports: int) -> Instruction:
    """The tip: a System transfer of ``lamports`` from ``payer`` to ``tip_account``."""
    if isinstance(lamports, bool) or not isinstance(lamports, int) or lamports < MIN_TIP_LAMPORTS:
        raise ValueError(f"lamports: a tip is at least {MIN_TIP_LAMPORTS}, got {lamports!r}")
    return transfer(TransferParams(from_pubkey=payer, to_pubkey=tip_account, lamports=lamports))


def tip_is_static(message: MessageV0, tip_account: Pubkey) -> bool:
    """Whether the compiled ``message`` names ``tip_account`` among its own keys (not through a
    lookup table, which Jito warns makes the tip ineffective)."""
    return tip_account in message.account_keys


def tables_without(tables: Iterable[AddressLookupTableAccount], accounts: Iterable[Pubkey]) -> list[AddressLookupTableAccount]:
    """The lookup tables that hold none of ``accounts`` (compiling with these keeps a tip account
    among the message's own keys)."""
    avoid = set(accounts)
    return [t for t in tables if avoid.isdisjoint(t.addresses)]


def is_dont_front(key: Pubkey) -> bool:
    """Whether ``key`` is a ``jitodontfront`` mark."""
    return str(key).startswith(DONT_FRONT_PREFIX)


def with_dont_front(ix: Instruction, mark: Pubkey) -> Instruction:
    """``ix`` with ``mark`` appended as a read-only, non-signer account (unchanged if it is there).

    Raises:
        ValueError: ``mark`` does not start with ``jitodontfront``.
    """
    if not is_dont_front(mark):
        raise ValueError(f"{mark} is not a {DONT_FRONT_PREFIX} account")
    if any(meta.pubkey == mark for meta in ix.accounts):
        return ix
    return Instruction(ix.program_id, ix.data, [*ix.accounts, AccountMeta(mark, is_signer=False, is_writable=False)])


def _signers(tx: VersionedTransaction) -> set[Pubkey]:
    message = tx.message
    return set(message.account_keys[: message.header.num_required_signatures])


def dont_front_problem(
    txs: Sequence[VersionedTransaction], loaded: Sequence[Iterable[Pubkey]] | None = None
) -> str | None:
    """Why the block engine would refuse this bundle under the ``jitodontfront`` rule, or ``None``.

    ``loaded``: per transaction, the keys it loads through lookup tables (the mark counts there
    too).
    """
    marked = []
    for i, tx in enumerate(txs):
        keys = [*tx.message.account_keys, *(loaded[i] if loaded is not None else ())]
        if any(is_dont_front(k) for k in keys):
            marked.append(i)
    if not marked:
        return None
    if marked != list(range(len(marked))):
        first_out = next(i for n, i in enumerate(marked) if i != n)
        return f"transaction {first_out} carries a {DONT_FRONT_PREFIX} account but is not at the front of the bundle"
    lead = _signers(txs[0])
    for i in marked[1:]:
        if lead.isdisjoint(_signers(txs[i])):
            return f"transaction {i} carries a {DONT_FRONT_PREFIX} account but shares no signer with transaction 0"
    return None


def bundle_id(txs: Sequence[VersionedTransaction]) -> str:
    """A bundle's id as Jito derives it: the SHA-256 (hex) of its transactions' first signatures,
    base58, joined by commas (jito-solana ``derive_bundle_id``)."""
    if not txs:
        raise ValueError("a bundle holds at least one transaction")
    return hashlib.sha256(",".join(str(tx.signatures[0]) for tx in txs).encode()).hexdigest()
