"""Chain verification: re-compute every hash and HMAC, name the first broken entry and why, and
say how much of the log the anchors cover (only anchored entries are safe from a key holder).
"""

from __future__ import annotations

import enum
import functools
import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loguru import logger

from xorj_actors.audit._chain import (
    GENESIS_HASH,
    AuditEntry,
    chain_hash,
    chain_hmac,
    entry_bytes,
    genesis_hash,
    hmac_template,
    link_rows,
)
from xorj_actors.audit._diagnose import (
    RowLookup,
    RowsLookup,
    StoreLookup,
    diagnose_chain,
    diagnose_rewrite,
    first_difference,
)
from xorj_actors.audit._keys import KEY_ROTATION, KeyRing, as_ring, fingerprint, rotation_target
from xorj_actors.audit._store import Store, chain_store, iter_rows, list_chains, open_store, read_head
from xorj_actors.audit.settings import AuditSettings

#: Rows read past the first broken entry to tell a swap or an insertion from an edit (when the
#: rows come from memory; against a store the whole table is searched).
_LOOKAHEAD = 8


@dataclass(frozen=True, slots=True)
class AnchorHead:
    """A chain head archived outside the database (see :mod:`xorj_actors.audit._anchor`)."""

    sequence: int
    hash: str
    hmac: str
    #: Where it is kept (the S3 object key), for messages.
    source: str = ""


#: Reads the entries an anchor archived (its segment), for an entry-by-entry comparison.
SegmentReader = Callable[[AnchorHead], Sequence[AuditEntry]]

#: ``progress(done, total)``: entries verified so far of the chain's ``total``, reported once per
#: batch read (never per entry); a second pass (after a failed parallel one) starts again at 0.
Progress = Callable[[int, int], None]


class Verdict(enum.StrEnum):
    """What ``audit verify`` concludes (and its exit code: 0, 3, 1)."""

    #: Chain and HMACs intact, and every entry is covered by a matching anchor.
    OK = "OK"
    #: Chain and HMACs intact, but entries after ``anchored_sequence`` are covered by no anchor:
    #: someone with the audit key could have cut or rewritten them unseen.
    UNANCHORED = "UNANCHORED"
    BROKEN = "BROKEN"


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
    #: The newest anchored entry that matched (0: none), and its timestamp.
    anchored_sequence: int = 0
    anchored_timestamp: str = ""
    #: The anchor the log disagrees with (a rewrite with the key, or a cut tail), if that broke it.
    disputed_anchor: AnchorHead | None = None
    #: Whether anchors were asked at all (a list, even empty); if not, nothing is anchored.
    anchors_consulted: bool = False
    #: The fingerprints of the key epochs walked, in order (one: no rotation).
    epochs: tuple[str, ...] = ()

    @property
    def unanchored(self) -> int:
        """Entries newer than the newest matching anchor."""
        return max(self.head_sequence - self.anchored_sequence, 0)

    @property
    def verdict(self) -> Verdict:
        if not self.ok:
            return Verdict.BROKEN
        return Verdict.UNANCHORED if self.unanchored or not self.anchors_consulted else Verdict.OK

    def describe(self, no_anchor_why: str = "no anchor was consulted") -> str:
        """One line for an operator; ``no_anchor_why`` says why no anchor covers the log, if none does."""
        if not self.ok:
            return f"BROKEN at entry {self.broken_sequence}: {self.reason}"
        head = f"{self.entries} entries, head {self.head_sequence} {self.head_hash}"
        if len(self.epochs) > 1:
            head += f", {len(self.epochs)} key epochs ({' -> '.join(self.epochs)})"
        undetectable = "a truncated tail or a rewrite with the audit key cannot be detected"
        if not self.anchors_consulted or (self.anchored_sequence == 0 and self.unanchored):
            return (f"UNANCHORED: {head}; chain and HMACs intact, but no anchor covers the log ({no_anchor_why}): "
                    f"{undetectable}")
        reach = (f"{self.anchors_checked} anchors matched, the last reaches entry {self.anchored_sequence} "
                 f"({self.anchored_timestamp})")
        if self.unanchored:
            return (f"UNANCHORED: {head}; chain and HMACs intact; {reach}; entries {self.anchored_sequence + 1}.."
                    f"{self.head_sequence} ({self.unanchored}) are not anchored: there {undetectable}")
        if self.entries == 0:
            return "OK: 0 entries, nothing to anchor"
        return f"OK: {head}; {reach}: every entry is anchored"


def verify_rows(
    rows: Iterable[tuple],
    keys: bytes | KeyRing,
    *,
    anchors: Sequence[AnchorHead] | None = None,
    start_sequence: int = 0,
    start_hash: str = GENESIS_HASH,
    lookup: Callable[[list[tuple]], RowLookup] | None = None,
    epoch_key: bytes | None = None,
) -> VerifyResult:
    """Verify raw rows (``COLUMNS`` order, by sequence) that continue the chain at ``start_*``.

    Key epochs: the walk starts with ``epoch_key`` (None: the known key the first row verifies
    under) and at each ``KEY_ROTATION`` entry, verified under its epoch's key, switches to the
    key whose fingerprint it names; a key ``keys`` does not hold is a break naming it.
    Every anchored head must match the row at its sequence, MACed under that row's epoch key,
    and the rows must reach the newest anchor (else the tail was truncated); ``anchors=None``:
    not consulted (nothing is anchored). ``lookup`` builds the :class:`RowLookup` a diagnosis
    searches, from the rows read past the break (default: those rows only).
    """
    ring = as_ring(keys)
    expected_seq = start_sequence + 1
    prev_hex = start_hash
    count = checked = 0
    anchored_seq, anchored_ts = 0, ""
    epochs: list[str] = []

    def broken(at: int, reason: str, disputed: AnchorHead | None = None) -> VerifyResult:
        return VerifyResult(False, count, expected_seq - 1, prev_hex, checked, at, reason,
                            anchored_seq, anchored_ts, disputed, consulted, tuple(epochs))

    consulted = anchors is not None
    anchored = {}
    for a in anchors or ():
        if ring.verifying(a.hash, a.hmac) is None:
            return broken(a.sequence, f"anchor {a.source or a.sequence}: its HMAC verifies under no known audit key"
                                      f" (fingerprints {', '.join(ring.fingerprints())})")
        anchored[a.sequence] = a
    it = iter(rows)
    first = next(it, None)
    if first is not None:
        it = itertools.chain([first], it)
        # The first row's own key (the genesis epoch's, or a range's); none: the current, and
        # the diagnosis below names the broken row.
        key = epoch_key or ring.verifying(first[9], first[10]) or ring.current
        epochs.append(fingerprint(key))
        mac = hmac_template(key)
    while first is not None:
        expected_seq, prev_hex, row, linked = link_rows(it, mac, expected_seq, prev_hex, anchored)
        count = expected_seq - start_sequence - 1
        if row is None:
            break
        if not linked:
            following = list(itertools.islice(it, _LOOKAHEAD))
            other = _other_epoch(ring, key, row, expected_seq, prev_hex)
            if other is not None:
                return broken(expected_seq, other)
            found = lookup(following) if lookup is not None else RowsLookup([row, *following])
            reason = diagnose_chain(key, expected_seq, prev_hex, row, found)
            if reason.startswith("forged HMAC") and ring.verifying(row[9], row[10]) is None:
                reason += (f" (nor under any known key, fingerprints {', '.join(ring.fingerprints())}: a wrong key,"
                           " or the key of an earlier epoch missing from the retired keys)")
            return broken(expected_seq, reason)
        seq = row[1]
        a = anchored.get(seq)
        if a is not None:
            if a.hash != prev_hex:
                # Reported as the anchored entry, the one before it the last good one.
                expected_seq, prev_hex, count = seq, row[8], count - 1
                return broken(seq, f"log rewritten: entry {seq} differs from the anchored head {a.source or a.hash}", a)
            if chain_hmac(key, a.hash) != a.hmac:
                return broken(seq, f"anchor {a.source or seq}: its HMAC is not under the key of its entry's epoch "
                                   f"(fingerprint {epochs[-1]})", a)
            checked += 1
            anchored_seq, anchored_ts = seq, row[2]
        if row[3] == KEY_ROTATION:
            old_fp, new_fp = rotation_target(row[7])
            if old_fp != epochs[-1]:
                return broken(seq, f"KEY_ROTATION entry {seq} names the old key {old_fp or '(none)'}, but its epoch's "
                                   f"key is {epochs[-1]}: a forged rotation")
            if new_fp in epochs:
                return broken(seq, f"KEY_ROTATION entry {seq} rotates back to the key with fingerprint {new_fp}, which "
                                   "an earlier epoch used: a key opens one epoch only (a retired key may have leaked)")
            new_key = ring.find(new_fp) if new_fp else None
            if new_key is None:
                return broken(seq, f"KEY_ROTATION entry {seq} rotates to the key with fingerprint "
                                   f"{new_fp or '(none)'}, which is not known: put that key in the retired keys "
                                   "([audit] retired_hmac_keys_env) to verify the entries after it")
            key, mac = new_key, hmac_template(new_key)
            epochs.append(new_fp)
    last = expected_seq - 1
    if anchored and max(anchored) > last:
        newest = anchored[max(anchored)]
        disputed = anchored[min(s for s in anchored if s > last)]
        return broken(last + 1, f"truncated tail: the log ends at entry {last} but entry {newest.sequence} "
                                f"was anchored ({newest.source or newest.hash})", disputed)
    return VerifyResult(True, count, last, prev_hex, checked, anchored_sequence=anchored_seq,
                        anchored_timestamp=anchored_ts, anchors_consulted=consulted, epochs=tuple(epochs))


def _other_epoch(ring: KeyRing, key: bytes, row: tuple, expected_seq: int, prev_hex: str) -> str | None:
    """Why ``row`` broke when it links but is MACed under another known key than its epoch's."""
    if row[1] != expected_seq or row[8] != prev_hex:
        return None
    canonical = entry_bytes(*row[:8])
    if chain_hash(prev_hex, canonical) != row[9]:
        return None
    other = ring.verifying(row[9], row[10])
    if other is None or other == key:
        return None
    return (f"entry {row[1]} is MACed under the key with fingerprint {fingerprint(other)}, not under its epoch's "
            f"key {fingerprint(key)}: written with the key of another epoch (an old key after a rotation?)")


def _against_segment(
    store: Store, result: VerifyResult, anchors: Sequence[AnchorHead], read_segment: SegmentReader
) -> VerifyResult:
    """Refine "differs from the anchored head"/"truncated tail": compare the disputed anchor's
    segment with the log entry by entry and report the FIRST entry that differs, and how.
    """
    disputed = result.disputed_anchor
    assert disputed is not None
    ordered = sorted(anchors, key=lambda a: a.sequence)
    after = max((a.sequence for a in ordered if a.sequence < disputed.sequence), default=0)
    later = iter([a for a in ordered if a.sequence > disputed.sequence])
    anchored_ids: dict[str, int] = {}

    def anchored_position(entry_id: str) -> int | None:
        # A moved entry may come from a later segment: read them one by one until it is found.
        while entry_id not in anchored_ids and (more := next(later, None)) is not None:
            anchored_ids.update((e.id, e.sequence) for e in read_segment(more))
        return anchored_ids.get(entry_id)

    lookup = StoreLookup(store)

    def local_position(entry_id: str) -> int | None:
        found = lookup.with_id(entry_id)
        return None if found is None else found[1]

    try:
        segment = [e for e in read_segment(disputed) if e.sequence > after]
        diff = first_difference(iter_rows(store, after=after, until=disputed.sequence), segment)
        if diff is None:
            return result
        anchored_ids.update((e.id, e.sequence) for e in segment)
        entry, row = diff
        reason = diagnose_rewrite(entry, row, local_position, anchored_position, disputed.source or disputed.hash,
                                  ordered[-1].sequence)
    except Exception as exc:  # noqa: BLE001 - S3 errors are many types; the coarse answer stands
        return replace(result, reason=f"{result.reason} (the anchored segment could not be read: {exc})")
    before = next((e.hash for e in segment if e.sequence == entry.sequence - 1), None)
    checked = sum(1 for a in ordered if a.sequence < entry.sequence)
    return replace(
        result,
        entries=entry.sequence - 1,
        head_sequence=entry.sequence - 1,
        head_hash=before or next((a.hash for a in ordered if a.sequence == after), store.genesis),
        anchors_checked=checked,
        broken_sequence=entry.sequence,
        reason=reason,
    )


#: Below this many entries one process verifies faster than starting forked workers (which
#: start in milliseconds); spawned ones import the package (~0.45 s of CPU each): 10 times more.
PARALLEL_MIN_ENTRIES = 20_000
_SPAWN_FACTOR = 10


def _cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _start_method() -> str:
    """``fork`` when this process runs no other thread (a fork copies no lock another thread
    holds, and the child opens its own connection), else ``spawn``."""
    return "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"


def batch_counter(progress: Progress, total: int) -> Callable[[int], None]:
    """An ``on_batch`` for :func:`iter_rows` that reports the rows so far to ``progress`` (0 at once)."""
    done = [0]
    progress(0, total)

    def on_batch(n: int) -> None:
        done[0] += n
        progress(done[0], total)

    return on_batch


#: A worker's counters of rows verified, one slot per worker, shared with the parent (progress).
_shared_done: Any = None


def _share_done(counters: Any) -> None:
    """The pool's initializer: keep the shared counters (they can only be passed at process start)."""
    global _shared_done
    _shared_done = counters


def _count_into(slot: int, n: int) -> None:
    _shared_done[slot] += n  # one writer per slot: no lock


def _verify_range(
    settings: AuditSettings, data_dir: Path, key: bytes | KeyRing, anchors: Sequence[AnchorHead], after: int, until: int,
    *, slot: int | None = None, on_batch: Callable[[int], None] | None = None,
) -> tuple[VerifyResult, str | None]:
    """Verify rows ``(after, until]`` as a chain starting at the first row's own ``prev_hash``
    (in a worker, or in this process on its own connection); also return that hash so the
    parent can check the link between ranges. Rows verified go to ``on_batch``, or in a worker
    to its ``slot`` of the shared counters.
    """
    if slot is not None and _shared_done is not None:
        on_batch = functools.partial(_count_into, slot)
    store = open_store(settings, data_dir, create=False)
    try:
        rows = iter_rows(store, after=after, until=until, on_batch=on_batch)
        first = next(rows, None)
        if first is None:
            return VerifyResult(False, 0, after, "", 0, after + 1, "no rows"), None
        result = verify_rows(
            itertools.chain([first], rows), key, anchors=anchors, start_sequence=after, start_hash=first[8]
        )
        return result, first[8]
    finally:
        store.close()


def _verify_parallel(
    store: Store, key: bytes | KeyRing, anchors: Sequence[AnchorHead], last: int, workers: int, method: str,
    progress: Progress | None = None,
) -> tuple[str, ...] | None:
    """The key epochs walked when every range verifies and the ranges link up; None means "ask
    the serial pass".

    ``workers - 1`` processes take a range each and this process takes the first. With
    ``progress``, the workers count their rows into shared counters that this process reports
    with its own, after each of its batches and then every 0.1 s until the workers are done.
    """
    bounds = [last * i // workers for i in range(workers + 1)]
    ranges = [(lo, hi, [a for a in anchors if lo < a.sequence <= hi]) for lo, hi in itertools.pairwise(bounds)]
    context = multiprocessing.get_context(method)  # never fork a process full of threads
    counters = None if progress is None else context.Array("q", workers - 1, lock=False)
    own = [0]

    def report(n: int = 0) -> None:
        own[0] += n
        progress(own[0] + sum(counters), last)  # type: ignore[misc,arg-type]

    shared = {} if counters is None else {"initializer": _share_done, "initargs": (counters,)}
    try:
        with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context, **shared) as pool:
            futures = [pool.submit(_verify_range, store.settings, store.data_dir, key, mine, lo, hi,
                                   slot=None if counters is None else slot)
                       for slot, (lo, hi, mine) in enumerate(ranges[1:])]
            lo, hi, mine = ranges[0]
            parts = [_verify_range(store.settings, store.data_dir, key, mine, lo, hi,
                                   on_batch=None if progress is None else report)]
            if progress is not None:
                while wait(futures, timeout=0.1).not_done:
                    report()
                report()
            parts += [f.result() for f in futures]
    except (BrokenProcessPool, OSError) as exc:
        logger.warning("parallel audit verify unavailable ({}); verifying in one process", exc)
        return None
    prev, epochs = store.genesis, ()
    for (result, first_prev), hi in zip(parts, bounds[1:]):
        # Each range starts with the key its first row verifies under: it must be the key the
        # range before ended with (a range may begin or end at a KEY_ROTATION entry).
        if not result.ok or first_prev != prev or result.head_sequence != hi or epochs[-1:] not in ((), result.epochs[:1]):
            return None
        prev, epochs = result.head_hash, epochs + result.epochs[1 if epochs else 0:]
    return epochs if len(set(epochs)) == len(epochs) else None  # a key back: the serial pass names the entry


def verify_store(
    store: Store,
    key: bytes | KeyRing,
    anchors: Sequence[AnchorHead] | None = None,
    *,
    workers: int | None = None,
    segments: SegmentReader | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Verify the whole log in ``store`` (and against ``anchors``; ``None``: not consulted), streaming
    it in batches, reporting to ``progress`` once per batch.

    A large log is split into contiguous ranges verified by ``workers`` processes, this one
    included (default: this process's CPUs, at most 4; forked when no other thread runs, else
    spawned, which pays off only on larger logs); the ranges must link up. Any failure is
    re-verified in one pass, so the report always names the first broken entry. A broken entry
    is diagnosed against the whole table; a log that disagrees with an anchor is compared with
    that anchor's segment (read with ``segments``) entry by entry.
    """
    workers = workers or min(_cpus(), 4)
    head = read_head(store)
    total = 0 if head is None else head.sequence
    if progress is not None:
        progress(0, total)
    method = _start_method()
    if (
        head is not None
        and workers > 1
        and head.sequence >= PARALLEL_MIN_ENTRIES * (1 if method == "fork" else _SPAWN_FACTOR)
        and all(a.sequence <= head.sequence for a in anchors or ())
        and (epochs := _verify_parallel(store, key, anchors or (), head.sequence, workers, method, progress))
    ):
        newest = max((a.sequence for a in anchors or ()), default=0)
        stamp = next((r[2] for r in iter_rows(store, after=newest - 1, until=newest)), "") if newest else ""
        return VerifyResult(True, head.sequence, head.sequence, head.hash, len(anchors or ()),
                            anchored_sequence=newest, anchored_timestamp=stamp, anchors_consulted=anchors is not None,
                            epochs=epochs)
    on_batch = None if progress is None else batch_counter(progress, total)  # from 0 again after a parallel pass
    result = verify_rows(iter_rows(store, on_batch=on_batch), key, anchors=anchors, start_hash=store.genesis,
                         lookup=lambda _following: StoreLookup(store))
    if result.disputed_anchor is not None and anchors and segments is not None:
        return _against_segment(store, result, anchors, segments)
    return result


def verify_chains(
    store: Store,
    key: bytes | KeyRing,
    anchors: Mapping[str, Sequence[AnchorHead]] | None = None,
    *,
    chains: Sequence[str] | None = None,
    workers: int | None = None,
    segments: SegmentReader | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, VerifyResult]:
    """Verify every chain of ``store``'s database (or only ``chains``), each on its own, against
    its own anchors; the results by chain, ``default`` first. ``progress(chain, done, total)``
    as :data:`Progress`.

    ``anchors`` maps a chain to its anchored heads (``None``: not consulted; a chain absent from
    it has none). A chain that has anchors but no table lost its whole log: it is reported broken.
    """
    names = list(chains) if chains is not None else list_chains(store)
    if chains is None and anchors is not None:
        names += sorted(c for c in anchors if c not in names)
    present = set(list_chains(store))
    results = {}
    for name in names:
        heads = None if anchors is None else list(anchors.get(name, ()))
        if name in present:
            report = None if progress is None else functools.partial(progress, name)
            results[name] = verify_store(chain_store(store, name), key, heads, workers=workers, segments=segments,
                                         progress=report)
        else:
            results[name] = _missing_chain(name, heads)
    return results


def _missing_chain(chain: str, anchors: Sequence[AnchorHead] | None) -> VerifyResult:
    """A chain with no table: empty, unless anchors remember entries of it."""
    result = verify_rows((), b"", anchors=None, start_hash=genesis_hash(chain))
    if not anchors:
        return replace(result, anchors_consulted=anchors is not None)
    newest = anchors[-1]
    return replace(result, ok=False, broken_sequence=1, disputed_anchor=newest,
                   reason=f"missing chain: chain {chain} has no table, but entry {newest.sequence} was anchored "
                          f"({newest.source or newest.hash})")
