"""Naming what was done to a log that does not verify: edited, deleted, inserted, swapped, rewritten.

Two sources of evidence. Without the audit key an intruder cannot re-chain, so every moved row
still carries the hash of its original position: the local rows alone say where each came from
(:func:`diagnose_chain`). With the key the chain can be recomputed and only the anchors remember
the original: the anchored segment is compared entry by entry, by entry id
(:func:`diagnose_rewrite`).
"""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from xorj_actors.audit._chain import GENESIS_HASH, AuditEntry, chain_hash, chain_hmac, entry_bytes
from xorj_actors.audit._store import COLUMNS, Store, qualified_table

#: Sequences tried on either side of a row to find the position its hash was computed for, when
#: its neighbours in the old chain are gone too (rows deleted and the rest renumbered).
_SEARCH = 1000
#: Fields of the canonical entry, for naming what a rewrite changed.
_CONTENT = ("id", "timestamp", "event_type", "severity", "actor", "correlation_id", "details")


class RowLookup(Protocol):
    """Rows of the log found by a column value (any position)."""

    def with_prev_hash(self, value: str) -> list[tuple]: ...

    def with_hash(self, value: str) -> list[tuple]: ...


class RowsLookup:
    """A :class:`RowLookup` over rows in memory (the rows read just past a break)."""

    def __init__(self, rows: Iterable[tuple]) -> None:
        self._rows = list(rows)

    def with_prev_hash(self, value: str) -> list[tuple]:
        return [r for r in self._rows if r[8] == value]

    def with_hash(self, value: str) -> list[tuple]:
        return [r for r in self._rows if r[9] == value]


class StoreLookup:
    """A :class:`RowLookup` over the whole store (full scans: only run once something broke)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _where(self, column: str, value: str) -> list[tuple]:
        cols = ", ".join(f'"{c}"' for c in COLUMNS)
        sql = f'SELECT {cols} FROM {qualified_table(self._store)} WHERE "{column}" = {self._store.db.param}'
        return [tuple(r) for r in self._store.db.execute_sql(sql, [value]).fetchall()]

    def with_prev_hash(self, value: str) -> list[tuple]:
        return self._where("prev_hash", value)

    def with_hash(self, value: str) -> list[tuple]:
        return self._where("hash", value)

    def with_id(self, entry_id: str) -> tuple | None:
        rows = self._where("id", entry_id)
        return rows[0] if rows else None


def _hash_as(row: tuple, sequence: int) -> str:
    """The row's hash had it been written as entry ``sequence`` (after its own ``prev_hash``)."""
    return chain_hash(row[8], entry_bytes(row[0], sequence, *row[2:8]))


def original_sequence(row: tuple, lookup: RowLookup) -> int | None:
    """The sequence the row's stored hash was computed for, when it is not its own."""
    candidates = [1] if row[8] == GENESIS_HASH else []
    candidates += [r[1] + 1 for r in lookup.with_hash(row[8])]  # after its old predecessor
    candidates += [r[1] - 1 for r in lookup.with_prev_hash(row[9])]  # before its old successor
    window = itertools.chain.from_iterable((row[1] + k, row[1] - k) for k in range(1, _SEARCH + 1))
    for seq in itertools.chain(candidates, window):
        if seq >= 1 and seq != row[1] and _hash_as(row, seq) == row[9]:
            return seq
    return None


def _genuine_elsewhere(key: bytes, sequence: int, prev: str, row: tuple, lookup: RowLookup) -> int | None:
    """Where the real entry ``sequence`` (the one that follows ``prev``, with a valid HMAC) now is."""
    for r in lookup.with_prev_hash(prev):
        if r[1] != row[1] and _hash_as(r, sequence) == r[9] and hmac.compare_digest(chain_hmac(key, r[9]), r[10]):
            return r[1]
    return None


def diagnose_chain(key: bytes, expected_seq: int, expected_prev: str, row: tuple, lookup: RowLookup) -> str:
    """Why ``row`` does not continue the chain as entry ``expected_seq`` after ``expected_prev``."""
    seq = row[1]
    if seq != expected_seq:
        return f"deleted row: entries {expected_seq}..{seq - 1} are missing"
    self_ok = _hash_as(row, seq) == row[9]
    original = None if self_ok else original_sequence(row, lookup)
    moved_to = _genuine_elsewhere(key, seq, expected_prev, row, lookup)
    if moved_to is not None:
        if original == moved_to:
            return f"rows swapped: entries {seq} and {moved_to} were exchanged"
        if original is not None:
            return (f"rows reordered: entry {seq} holds the original entry {original}; "
                    f"the original entry {seq} is now entry {moved_to}")
        return f"inserted row: entry {seq} is not part of the chain (the original entry {seq} is now entry {moved_to})"
    if original is not None and original > seq:
        return (f"deleted row: entry {seq} holds the original entry {original}; "
                f"{original - seq} row(s) deleted and later rows renumbered")
    if original is not None:
        return f"inserted row: entry {seq} holds the original entry {original}; rows were inserted before it"
    if self_ok and seq == 1 and row[8] != expected_prev:
        return ("wrong chain: entry 1 does not start this chain (its prev_hash is not this chain's genesis):"
                " rows of another chain, or of another store")
    if self_ok and row[8] == expected_prev:
        return f"forged HMAC: entry {seq}'s hash recomputes but its HMAC does not verify with the audit key"
    if self_ok:
        return f"rows reordered: entry {seq} is genuine but does not follow entry {seq - 1}"
    return f"edited row: entry {seq}'s contents do not match its stored hash"


def first_difference(local: Iterable[tuple], anchored: Sequence[AuditEntry]) -> tuple[AuditEntry, tuple | None] | None:
    """The first anchored entry the local rows (same range, by sequence) do not hold, and the local
    row at its place (``None``: the log ends before it)."""
    rows = iter(local)
    for entry in anchored:
        row = next(rows, None)
        if row is None or (row[1], row[9]) != (entry.sequence, entry.hash):
            return entry, row
    return None


def diagnose_rewrite(
    anchored: AuditEntry,
    row: tuple | None,
    local_position: Callable[[str], int | None],
    anchored_position: Callable[[str], int | None],
    source: str,
    newest: int,
) -> str:
    """Why the local entry at ``anchored.sequence`` (``row``) is not the anchored one.

    ``local_position``/``anchored_position`` map an entry id to its sequence in the log and in
    the anchors (``None``: not there); ``newest`` is the newest anchored sequence.
    """
    seq = anchored.sequence
    where = f"the anchors ({source}) prove it"
    if row is None:
        return (f"truncated tail: the log ends at entry {seq - 1} but entry {newest} was anchored "
                f"(entry {seq} is in {source})")
    if row[0] == anchored.id:
        changed = [c for c, a, b in zip(COLUMNS, anchored.row(), row) if c in _CONTENT and a != b]
        what = ", ".join(changed) + " changed" if changed else "its chain hash differs"
        return f"log rewritten with the audit key: entry {seq} differs from its anchored copy ({what}; {where})"
    now_at = local_position(anchored.id)
    was_at = anchored_position(row[0])
    if now_at is not None and now_at == was_at:
        return f"rows swapped: entries {seq} and {now_at} were exchanged and the chain recomputed ({where})"
    if now_at is None and was_at is not None and was_at > seq:
        return (f"deleted row: anchored entries {seq}..{was_at - 1} are missing, later rows renumbered and "
                f"the chain recomputed ({where})")
    if now_at is None:
        return (f"log rewritten with the audit key: anchored entry {seq} is gone, replaced by an entry the "
                f"anchors do not hold ({where})")
    if was_at is None:
        return (f"inserted row: entry {seq} is not in the anchors; the anchored entry {seq} is now entry {now_at} "
                f"and the chain was recomputed ({where})")
    return (f"rows reordered: entry {seq} holds the anchored entry {was_at}; the anchored entry {seq} is now "
            f"entry {now_at} ({where})")
