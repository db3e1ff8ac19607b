"""Chain verification: re-compute every hash and HMAC, name the first broken entry and why."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from xorj_actors.audit._chain import GENESIS_HASH, chain_hash, chain_hmac, chain_step, entry_bytes, hmac_template
from xorj_actors.audit._store import Store, iter_rows, open_store, read_head
from xorj_actors.audit.settings import AuditSettings

#: Rows read past the first broken entry to tell a swap or an insertion from an edit.
_LOOKAHEAD = 8


@dataclass(frozen=True, slots=True)
class AnchorHead:
    """A chain head archived outside the database (see :mod:`xorj_actors.audit._anchor`)."""

    sequence: int
    hash: str
    hmac: str
    #: Where it is kept (the S3 object key), for messages.
    source: str = ""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a verification; ``reason`` names the first problem when ``ok`` is False."""

    ok: bool
    entries: int
    head_sequence: int
    head_hash: str
    anchors_checked: int = 0
    broken_sequence: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        """One line for an operator."""
        if self.ok:
            return (
                f"OK: {self.entries} entries, head {self.head_sequence} {self.head_hash}, "
                f"{self.anchors_checked} anchors matched"
            )
        return f"BROKEN at entry {self.broken_sequence}: {self.reason}"


def _recompute(row: tuple, sequence: int) -> str:
    return chain_hash(row[8], entry_bytes(row[0], sequence, *row[2:8]))


def _original_sequence(row: tuple) -> int | None:
    """The sequence number the row's stored hash was computed with, if it is a nearby one."""
    seq = row[1]
    for d in itertools.chain.from_iterable((k, -k) for k in range(1, _LOOKAHEAD + 1)):
        if seq + d >= 1 and _recompute(row, seq + d) == row[9]:
            return seq + d
    return None


def _diagnose(key: bytes, expected_seq: int, expected_prev: str, row: tuple, following: list[tuple]) -> str:
    seq = row[1]
    if seq != expected_seq:
        return f"deleted row: entries {expected_seq}..{seq - 1} are missing"
    self_ok = _recompute(row, seq) == row[9]
    original = None if self_ok else _original_sequence(row)
    if original is not None and original > seq:
        partner = next((r for r in following if r[1] == original), None)
        if partner is not None and _original_sequence(partner) == seq:
            return f"rows swapped: entries {seq} and {original} were exchanged"
        return (
            f"deleted row: entry {seq} holds the original entry {original}; "
            f"{original - seq} row(s) deleted and later rows renumbered"
        )
    nxt = following[0] if following else None
    if nxt is not None and (nxt[8] == expected_prev or _original_sequence(nxt) == seq):
        return f"inserted row: entry {seq} is not part of the chain (the next row carries the original entry {seq})"
    if original is not None:
        return f"inserted row: entry {seq} holds the original entry {original}; rows were inserted before it"
    if self_ok and chain_hmac(key, row[9]) != row[10]:
        return f"forged HMAC: entry {seq}'s hash recomputes but its HMAC does not verify with the audit key"
    if self_ok:
        return f"rows reordered: entry {seq} is genuine but does not follow entry {seq - 1}"
    return f"edited row: entry {seq}'s contents do not match its stored hash"


def verify_rows(
    rows: Iterable[tuple],
    key: bytes,
    *,
    anchors: Sequence[AnchorHead] = (),
    start_sequence: int = 0,
    start_hash: str = GENESIS_HASH,
) -> VerifyResult:
    """Verify raw rows (``COLUMNS`` order, by sequence) that continue the chain at ``start_*``.

    Every anchored head must match the row at its sequence, and the rows must reach the newest
    anchor (else the tail was truncated).
    """
    expected_seq = start_sequence + 1
    prev_hex = start_hash
    prev_raw = bytes.fromhex(start_hash)
    count = checked = 0

    def broken(at: int, reason: str) -> VerifyResult:
        return VerifyResult(False, count, expected_seq - 1, prev_hex, checked, at, reason)

    anchored = {}
    for a in anchors:
        if chain_hmac(key, a.hash) != a.hmac:
            return broken(a.sequence, f"anchor {a.source or a.sequence}: its HMAC does not verify with the audit key")
        anchored[a.sequence] = a
    it = iter(rows)
    mac = hmac_template(key)
    for row in it:
        entry_id, seq, ts, etype, sev, actor, corr, details, prev, stored, tag = row
        raw, h, computed_tag = chain_step(
            mac, prev_raw, entry_bytes(entry_id, seq, ts, etype, sev, actor, corr, details)
        )
        if seq != expected_seq or prev != prev_hex or h != stored or computed_tag != tag:
            following = list(itertools.islice(it, _LOOKAHEAD))
            return broken(expected_seq, _diagnose(key, expected_seq, prev_hex, row, following))
        if seq in anchored:
            a = anchored[seq]
            if a.hash != h:
                return broken(seq, f"log rewritten: entry {seq} differs from the anchored head {a.source or a.hash}")
            checked += 1
        count += 1
        expected_seq += 1
        prev_hex, prev_raw = h, raw
    last = expected_seq - 1
    if anchored and max(anchored) > last:
        newest = anchored[max(anchored)]
        return broken(last + 1, f"truncated tail: the log ends at entry {last} but entry {newest.sequence} "
                                f"was anchored ({newest.source or newest.hash})")
    return VerifyResult(True, count, last, prev_hex, checked)


#: Below this many entries one process verifies faster than starting workers.
PARALLEL_MIN_ENTRIES = 200_000


def _verify_range(
    settings: AuditSettings, data_dir: Path, key: bytes, anchors: Sequence[AnchorHead], after: int, until: int
) -> tuple[VerifyResult, str | None]:
    """Worker: verify rows ``(after, until]`` as a chain starting at the first row's own
    ``prev_hash``; also return that hash so the parent can check the link between ranges.
    """
    store = open_store(settings, data_dir, create=False)
    try:
        rows = iter_rows(store, after=after, until=until)
        first = next(rows, None)
        if first is None:
            return VerifyResult(False, 0, after, "", 0, after + 1, "no rows"), None
        result = verify_rows(
            itertools.chain([first], rows), key, anchors=anchors, start_sequence=after, start_hash=first[8]
        )
        return result, first[8]
    finally:
        store.close()


def _verify_parallel(store: Store, key: bytes, anchors: Sequence[AnchorHead], last: int, workers: int) -> bool:
    """True when every range verifies and the ranges link up; False means "ask the serial pass"."""
    bounds = [last * i // workers for i in range(workers + 1)]
    context = multiprocessing.get_context("spawn")  # never fork a process full of threads
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [
                pool.submit(_verify_range, store.settings, store.data_dir, key,
                            [a for a in anchors if lo < a.sequence <= hi], lo, hi)
                for lo, hi in itertools.pairwise(bounds)
            ]
            parts = [f.result() for f in futures]
    except (BrokenProcessPool, OSError) as exc:
        logger.warning("parallel audit verify unavailable ({}); verifying in one process", exc)
        return False
    prev = GENESIS_HASH
    for (result, first_prev), hi in zip(parts, bounds[1:]):
        if not result.ok or first_prev != prev or result.head_sequence != hi:
            return False
        prev = result.head_hash
    return True


def verify_store(
    store: Store, key: bytes, anchors: Sequence[AnchorHead] = (), *, workers: int | None = None
) -> VerifyResult:
    """Verify the whole log in ``store`` (and against ``anchors``), streaming it in batches.

    A large log is split into contiguous ranges verified by ``workers`` processes (default: one
    per CPU, at most 4); the ranges must link up. Any failure is re-verified in one pass, so the
    report always names the first broken entry.
    """
    workers = workers or min(os.cpu_count() or 1, 4)
    head = read_head(store)
    if (
        head is not None
        and workers > 1
        and head.sequence >= PARALLEL_MIN_ENTRIES
        and all(a.sequence <= head.sequence for a in anchors)
        and _verify_parallel(store, key, anchors, head.sequence, workers)
    ):
        return VerifyResult(True, head.sequence, head.sequence, head.hash, len(anchors))
    return verify_rows(iter_rows(store), key, anchors=anchors)
