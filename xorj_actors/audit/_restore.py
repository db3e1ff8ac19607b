"""``audit restore --from-anchors``: rebuild an empty audit store from the S3 Object Lock anchors.

The anchors hold every entry up to the last anchor of each chain (docs/AUDIT.md, "Anchoring").
A restore writes them back into an empty store with the recover machinery (each segment verified
to continue the chain before it is written), verifies the result as ``audit verify`` does, and
says what cannot come back: the entries the lost database held beyond the last anchor. Their
number is unknown (the database is gone); what is known is stated (:class:`Gap`). It sets the
kill switch's halt marker so that the engine starts halted and settles its open trades against
the chain before anyone recovers it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xorj_actors.audit._anchor import list_chain_anchors, read_segment, recover_from_anchors
from xorj_actors.audit._halt_history import read_halt_history, state_keys
from xorj_actors.audit._keys import KeyRing, as_ring
from xorj_actors.audit._epochs import EpochMap
from xorj_actors.audit._reader import chain_epochs
from xorj_actors.audit._store import AuditStoreError, Store, chain_store, list_chains, open_store, read_head
from xorj_actors.audit._verify import VerifyResult, verify_chains
from xorj_actors.audit.settings import AnchorSettings, AuditSettings
from xorj_actors.kill_switch import HaltMarker, PersistedState, StateFile

__all__ = [
    "ChainRestore",
    "Gap",
    "RestoreIncomplete",
    "RestoreRefused",
    "begin_restore_halt",
    "restore_epoch",
    "restore_from_anchors",
    "set_restore_halt",
]


class RestoreRefused(RuntimeError):
    """The store is not empty (or there is nothing to restore): nothing was changed."""


class RestoreIncomplete(RuntimeError):
    """The restore stopped partway, after writing entries: the store is no longer empty.

    Attributes:
        written: entries in each chain the restore opened when it stopped (``None``: unreadable).
    """

    def __init__(self, cause: BaseException, written: dict[str, int | None]) -> None:
        super().__init__(str(cause))
        self.written = written


@dataclass(frozen=True, slots=True)
class Gap:
    """What is known of a chain's lost head, beyond its last anchor."""

    #: The last anchored entry: the restored log ends here.
    anchored_sequence: int
    #: Its timestamp (the time the writer sequenced it).
    anchored_timestamp: str
    #: The anchor object that holds it.
    anchor: str
    #: The engine's local evidence (its kill-switch state file), for this data directory's chain
    #: only; ``None``: no such evidence was read (another chain's).
    local_evidence: str | None
    #: The local evidence proves the lost log went beyond the last anchor.
    proven_loss: bool

    def describe(self, interval_s: float) -> str:
        """The operator's lines: what is known, what cannot be."""
        known = (f"the restored log ends at entry {self.anchored_sequence} ({self.anchored_timestamp}), "
                 f"the last anchor ({self.anchor})")
        unknown = (f"entries the lost database held after entry {self.anchored_sequence} are not in any anchor: "
                   "they cannot be restored, and their number and content cannot be known "
                   f"(anchoring runs every {interval_s:g} s, longer if S3 failed; an engine stopped "
                   "cleanly anchored at its stop, so then nothing is lost)")
        lines = [f"known: {known}", f"unknown: {unknown}"]
        if self.local_evidence is not None:
            lines.append(f"local evidence: {self.local_evidence}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "anchored_sequence": self.anchored_sequence,
            "anchored_timestamp": self.anchored_timestamp,
            "anchor": self.anchor,
            "lost_after_sequence": self.anchored_sequence,
            "lost_entries": None,  # unknowable: the database that held them is gone
            "local_evidence": self.local_evidence,
            "proven_loss": self.proven_loss,
        }


@dataclass(frozen=True, slots=True)
class ChainRestore:
    """One chain restored: how many entries, from how many anchors, the verify, the gap."""

    chain: str
    restored: int
    anchors: int
    result: VerifyResult
    gap: Gap

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "chain": self.chain,
            "restored": self.restored,
            "anchors": self.anchors,
            "verdict": r.verdict.value,
            "verify": r.describe(),
            "entries": r.entries,
            "head_sequence": r.head_sequence,
            "head_hash": r.head_hash,
            "gap": self.gap.to_dict(),
        }


def _chain_heads(store: Store | None) -> dict[str, int]:
    """Every chain of an opened store with its head sequence (0: an empty table)."""
    if store is None:
        return {}
    out = {}
    for name in list_chains(store):
        head = read_head(chain_store(store, name))
        out[name] = 0 if head is None else head.sequence
    return out


def _open_existing(settings: AuditSettings, data_dir: Path) -> Store | None:
    """The store as it is, or ``None`` when it has no database or no audit table at all."""
    try:
        return open_store(settings, data_dir, create=False, need_chain=False)
    except AuditStoreError as exc:
        if "no audit" in str(exc):  # no database file, no table: an empty store
            return None
        raise


def restore_from_anchors(
    settings: AuditSettings,
    data_dir: Path,
    key: bytes | KeyRing,
    client: Any,
    *,
    chains: Sequence[str] | None = None,
    state_file: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    before_write: Callable[[Sequence[str]], object] | None = None,
) -> dict[str, ChainRestore]:
    """Rebuild ``chains`` (default: every chain the anchors hold) of an empty store from the anchors.

    Each chain must be empty (no table, or no row); otherwise nothing is written. Each anchored
    segment is verified to continue the chain before it is written (``recover_from_anchors``);
    then every restored chain is verified against its anchors, segments included.
    ``state_file``: the engine's kill-switch state file, read as evidence of the lost head for
    ``settings.chain_name`` (this data directory's chain). ``progress(chain, done, total)``.
    ``before_write(chains)`` runs once the checks passed, before anything is written (the CLI sets
    the halt marker there: a restore that stops partway leaves the engine halted); if it raises,
    nothing is written.

    Raises:
        RestoreRefused: a chain to restore is not empty, or no anchor holds it.
        RestoreIncomplete: it stopped partway (an anchor unreadable or not verifying, the store
            failing) after writing entries.
        AnchorError: the anchors cannot be listed or read, or a segment does not verify; nothing written.
        AuditStoreError: the store cannot be opened or written; nothing written.
    """
    anchor: AnchorSettings = settings.anchor
    heads = list_chain_anchors(client, anchor)
    names = list(chains) if chains is not None else list(heads)
    where = f"s3://{anchor.bucket}/{anchor.prefix}"
    if not names:
        raise RestoreRefused(f"no anchor in {where}: nothing to restore from")
    if missing := [n for n in names if n not in heads]:
        raise RestoreRefused(f"no anchor of chain {', '.join(missing)} in {where}")
    existing = _open_existing(settings, data_dir)
    try:
        found = _chain_heads(existing)
    finally:
        if existing is not None:
            existing.close()
    # Without --chain the whole store must be empty; with it, the chains named.
    busy = {n: s for n, s in found.items() if s and (chains is None or n in names)}
    if busy:
        held = ", ".join(f"chain {n} holds {s} entries" for n, s in busy.items())
        raise RestoreRefused(
            f"the audit store is not empty ({held}): restore rebuilds an empty store only and changed nothing; "
            "to append what the anchors hold beyond a restored backup, run `audit recover`"
        )
    if before_write is not None:
        before_write(names)
    stores: dict[str, Store] = {}
    try:
        restored = {}
        try:
            for name in names:
                stores[name] = open_store(dataclasses.replace(settings, chain=name), data_dir, create=True)
            for name, store in stores.items():
                report = None if progress is None else _restore_step(progress, name)
                restored[name] = recover_from_anchors(store, key, client, anchor, progress=report)
        except Exception as exc:
            written = _written(stores)
            if any(n != 0 for n in written.values()):
                raise RestoreIncomplete(exc, written) from exc
            raise
        first = stores[names[0]]
        verify_progress = None if progress is None else functools.partial(_verify_step, progress)
        results = verify_chains(first, key, heads, chains=names, segments=functools.partial(read_segment, client, anchor),
                                progress=verify_progress)
        out = {}
        for name in names:
            last = heads[name][-1]
            head = read_head(stores[name])
            evidence = _local_evidence(stores[name], key, state_file) if name == settings.chain_name else (None, False)
            gap = Gap(last.sequence, head.timestamp if head else "", last.source, *evidence)
            out[name] = ChainRestore(name, restored[name], len(heads[name]), results[name], gap)
        return out
    finally:
        for store in stores.values():
            store.close()


def _written(stores: dict[str, Store]) -> dict[str, int | None]:
    """How many entries each chain holds now (it was empty): ``None`` where the store cannot tell."""
    out: dict[str, int | None] = {}
    for name, store in stores.items():
        try:
            head = read_head(store)
        except Exception:  # noqa: BLE001 - the store that failed may fail again; say "unknown"
            out[name] = None
        else:
            out[name] = 0 if head is None else head.sequence
    return out


def _restore_step(progress: Callable[[str, int, int], None], chain: str) -> Callable[[str, int, int], None]:
    """The recover steps as one bar per chain (an empty store has no local log to verify)."""

    def report(step: str, done: int, total: int) -> None:
        if step == "from anchors":
            progress(f"restore {chain}", done, total)

    return report


def _verify_step(progress: Callable[[str, int, int], None], chain: str, done: int, total: int) -> None:
    progress(f"verify {chain}", done, total)


def _local_evidence(store: Store, key: bytes | KeyRing, state_file: Path | None) -> tuple[str | None, bool]:
    """What the kill switch's state file, if it survived, says of the lost head: it records the
    last kill-switch transition, which the audit log records too. A resume is durable in the log
    before the file is written, so a file ahead of the restored log with a resume proves a loss;
    a halt writes the file first (docs/HALT_PROTOCOL.md), so one ahead with a halt only suggests it."""
    if state_file is None:
        return None, False
    ring = as_ring(key)
    try:
        epochs = chain_epochs(store, ring)
    except AuditStoreError:  # rotations that break the rules: only the current key's file is evidence
        epochs = EpochMap()
    reading = StateFile(state_file, *state_keys(ring, epochs)).read()
    if not reading.present:
        return f"no kill-switch state file at {state_file}: nothing local tells how far the lost log went", False
    if reading.problem is not None or reading.state is None:
        return f"the kill-switch state file {state_file} cannot be trusted ({reading.problem}): it tells nothing", False
    last = read_halt_history(store, key).last
    file_state = reading.state
    said = f"{file_state.state.value} epoch {file_state.epoch}"
    agrees = last is not None and last.epoch == file_state.epoch and (
        (file_state.halted and PersistedState(state=last.state).halted) or (file_state.state is last.state and file_state.factor == last.factor)
    )
    if agrees:
        return (f"the kill-switch state file ({said}) matches the restored log's last kill-switch transition: "
                "no kill-switch transition was lost; trade entries after the last anchor may still have been"), False
    logged = "no kill-switch transition" if last is None else f"{last.state.value} epoch {last.epoch} last"
    if last is not None and file_state.epoch < last.epoch:
        return f"the kill-switch state file ({said}) is older than the restored log ({logged}): it tells nothing", False
    if file_state.halted:
        return (f"the kill-switch state file records {said}, the restored log {logged}: the lost database probably "
                "held that halt beyond the last anchor (unless the engine died between writing the file and the "
                "halt's audit entry: halts write the file first)"), False
    return (f"the kill-switch state file records {said}, the restored log {logged}: the lost database held at least "
            "that transition beyond the last anchor (resumes are in the log before the file)"), True


def set_restore_halt(marker: Path, store_chains: dict[str, ChainRestore], epoch: int) -> str:
    """Set the kill switch's halt marker: the engine's next start is ``TRIGGERED`` (docs/HALT_PROTOCOL.md),
    whatever its state file says, so it settles its open trades against the chain before a recovery.

    Returns the text set. Raises OSError when the marker cannot be written.
    """
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ends = ", ".join(f"{c.chain} at entry {c.gap.anchored_sequence}" for c in store_chains.values())
    return _set_halt(marker, f"epoch {epoch} audit store restored from the anchors at {now} (log ends: {ends}): "
                             "reconcile, then recover")


def begin_restore_halt(marker: Path, chains: Sequence[str]) -> str:
    """Set the halt marker before a restore writes anything (fail closed: one that stops partway
    leaves the engine halted); :func:`set_restore_halt` replaces it once the restore is done.

    Returns the text set. Raises OSError when the marker cannot be written.
    """
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Epoch 0: the restored log's own epochs are read at start too (docs/HALT_PROTOCOL.md).
    return _set_halt(marker, f"epoch 0 audit store restore from the anchors begun at {now} (chains: {', '.join(chains)}), "
                             "not reported finished: check the log with `audit verify`, finish it with `audit recover`")


def _set_halt(marker: Path, text: str) -> str:
    marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a fresh data directory (PostgreSQL)
    halt = HaltMarker(marker)
    try:
        halt.open()
        halt.set(text)
    finally:
        halt.close()
    return text


def restore_epoch(settings: AuditSettings, data_dir: Path, key: bytes | KeyRing) -> int:
    """The highest kill-switch epoch in the restored log of this data directory's chain (0: none)."""
    store = open_store(settings, data_dir, create=False)
    try:
        return read_halt_history(store, key).max_epoch
    finally:
        store.close()

