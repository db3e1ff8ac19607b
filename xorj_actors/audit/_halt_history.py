"""The kill switch's history in the audit log, read back for its start-up check.

At every start the kill switch compares its state file with the last transition it recorded
here (``xorj_actors.kill_switch._start_decision``). :func:`read_halt_history` reads the kill switch's
entries, each one's hash and HMAC checked (an entry that does not verify means the history
cannot be trusted, which the kill switch reads as halted), and sums them up as a
:class:`~xorj_actors.kill_switch.HaltHistory`. :func:`append_durable` is how the engine records
the entries that must be durable before the kill switch goes on (a resume).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import peewee
from loguru import logger
from pykka import ActorDeadError

from xorj_actors.audit._actor import AUDIT_NAME, AppendDurable, AuditEvent, GetAuditHealth
from xorj_actors.audit._chain import EventType, parse_utc_timestamp
from xorj_actors.audit._keys import KeyRing, load_key_ring
from xorj_actors.audit._epochs import EpochMap
from xorj_actors.audit._reader import _verified, chain_epochs
from xorj_actors.audit._store import (
    COLUMNS, KILL_SWITCH_ACTOR, KILL_SWITCH_ALIVE_ACTOR, AuditStoreError, Store, open_store, qualified_table,
)
from xorj_actors.audit.settings import AuditSettings
from xorj_actors.kill_switch import HaltHistory, KillSwitchState, Transition, derive_state_key

__all__ = [
    "KILL_SWITCH_ACTOR", "KILL_SWITCH_ALIVE_ACTOR", "KILL_SWITCH_STARTING", "append_durable", "audit_key_in_use", "halt_history",
    "chain_state_keys", "read_halt_history", "state_keys",
]

#: ``what`` of the entry written (durably) before the history is read: it flushes the writer.
KILL_SWITCH_STARTING = "kill switch starting"
_TYPES = (EventType.HALT, EventType.RECOVERY, EventType.SYSTEM_EVENT, EventType.SECURITY_VIOLATION, EventType.ERROR_EVENT)
#: The RECOVERY entries whose nonce is used: a recovery accepted here, a cluster's followed here.
_USED_NONCE = frozenset({"recovery accepted", "cluster recovery followed"})


def state_keys(keys: KeyRing, epochs: EpochMap) -> tuple[bytes, tuple[bytes, ...]]:
    """The state file's key of the current epoch, and the one retired key it may still be under:
    the chain's key just before the current one (a file written before the last rotation, the
    process gone before rewriting it). Any other retired key fails closed: a leaked old key must
    not forge the file (docs/AUDIT.md, "Key epochs")."""
    prior = epochs.prior_key(keys.current)
    return derive_state_key(keys.current), () if prior is None else (derive_state_key(prior),)


def chain_state_keys(settings: AuditSettings, data_dir: Path, keys: KeyRing) -> tuple[bytes, tuple[bytes, ...]]:
    """:func:`state_keys` with the epochs of the configured chain (none readable: no retired key)."""
    try:
        store = open_store(settings, data_dir, create=False)
    except AuditStoreError as exc:
        logger.warning("kill switch: the audit chain's key epochs are unreadable ({}): no retired state key", exc)
        return state_keys(keys, EpochMap())
    try:
        return state_keys(keys, chain_epochs(store, keys))
    except (AuditStoreError, peewee.DatabaseError) as exc:  # a timeout, a database restart: fail closed
        logger.error("kill switch: the audit chain's key epochs: {}: no retired state key", exc)
        return state_keys(keys, EpochMap())
    finally:
        store.close()


def read_halt_history(store: Store, key: bytes | KeyRing) -> HaltHistory:
    """The kill switch's history in ``store``; raises UnverifiedEntry if an entry was edited."""
    p, table = store.db.param, qualified_table(store)
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    types = [t.value for t in _TYPES]
    # The actor is a literal, not a parameter: only then may the planner use the partial index.
    sql = (
        f"SELECT {cols} FROM {table} WHERE \"actor\" = '{KILL_SWITCH_ACTOR}'"
        f' AND "event_type" IN ({", ".join([p] * len(types))}) ORDER BY "sequence"'
    )
    last: Transition | None = None
    max_epoch = 0
    digests: set[str] = set()
    has_history = seen_alive = False
    # When the engine was last alive: the last entry before this start's marker (the flush wrote
    # it just before this read: a last entry that is a marker is this start's own)...
    tail: list[tuple[int, str, bool]] = []  # (sequence, timestamp, is the marker) of the last two
    epochs = chain_epochs(store, key)
    for row in store.db.execute_sql(sql, types).fetchall():
        entry = _verified(row, epochs)
        details = json.loads(entry.details)
        tail = [*tail[-1:], (entry.sequence, entry.timestamp, details.get("what") == KILL_SWITCH_STARTING)]
        # A start that writes ``alive`` entries says so (the policy must not read an older
        # version's quiet log as downtime).
        seen_alive = seen_alive or "alive_every_s" in details
        # History: any entry but the start-up marker (a start that recorded no transition left
        # nothing that could have traded: the first ARMED is recorded before it is published).
        has_history = has_history or details.get("what") != KILL_SWITCH_STARTING
        epoch = details.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            max_epoch = max(max_epoch, epoch)
        moved = details.get("transition")
        if isinstance(moved, dict):
            last = Transition(KillSwitchState(moved["state"]), int(moved["epoch"]), float(moved["factor"]))
            max_epoch = max(max_epoch, last.epoch)
        if entry.event_type == EventType.RECOVERY.value and details.get("what") in _USED_NONCE:
            digest = details.get("nonce_sha256")
            if isinstance(digest, str):
                digests.add(digest)
    alive = _last_alive(store, epochs, tail, look=seen_alive)
    return HaltHistory(
        has_history=has_history, last=last, max_epoch=max_epoch, nonce_digests=frozenset(digests),
        last_alive=parse_utc_timestamp(alive).timestamp() if alive is not None else None, seen_alive=seen_alive,
        key_rotations=epochs.rotations,
    )


def _last_alive(store: Store, epochs: EpochMap, tail: list[tuple[int, str, bool]], *, look: bool) -> str | None:
    """...or the last ``alive`` entry after that one, if any: one step down the partial index of
    ``alive`` entries, between that entry and the marker. ``look`` False (no start of this log
    wrote ``alive`` entries: an older version's log) asks nothing more."""
    if tail and tail[-1][2]:  # this start's marker: what came before it
        upper, tail = tail[-1][0], tail[:-1]
    else:
        upper = None
    if not tail:
        return None
    lower, when, _ = tail[-1]
    if not look:
        return when
    p, table = store.db.param, qualified_table(store)
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    below = f' AND "sequence" < {p}' if upper is not None else ""
    sql = (
        f"SELECT {cols} FROM {table} WHERE \"actor\" = '{KILL_SWITCH_ALIVE_ACTOR}' AND \"sequence\" > {p}{below}"
        ' ORDER BY "sequence" DESC LIMIT 1'
    )
    rows = store.db.execute_sql(sql, [lower] if upper is None else [lower, upper]).fetchall()
    return _verified(rows[0], epochs).timestamp if rows else when


def halt_history(settings: AuditSettings, data_dir: Path, environment: str, *, flush: Callable[[], None]) -> HaltHistory:
    """Flush the Audit actor (``flush``: a durable entry, so every entry told before it is
    committed), then read the history from the store. Never raises: a failure is the
    history's ``problem``, which the kill switch reads as halted."""
    try:
        flush()
        key = load_key_ring(settings, environment)
        store = open_store(settings, data_dir)
        try:
            return read_halt_history(store, key)
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - whatever failed, the history cannot be trusted
        return HaltHistory(problem=f"{type(exc).__name__}: {exc}"[:300])


def append_durable(runtime: Any, event: AuditEvent, timeout: float) -> None:
    """Append ``event`` through the Audit actor and wait until it is committed.

    Raises:
        ActorDeadError: no Audit actor; AuditUnavailable: the log cannot be written;
        TimeoutError: not committed within ``timeout`` (it may still be, later).
    """
    ref = runtime.whereis(AUDIT_NAME)
    if ref is None:
        raise ActorDeadError("audit actor not running")
    future: Future[Any] = ref.ask(AppendDurable(event=event), timeout=timeout)
    future.result(timeout=timeout)


def audit_key_in_use(runtime: Any, timeout: float) -> str | None:
    """The fingerprint of the key the Audit actor's writer MACs with now (None: unknown)."""
    ref = None if runtime is None else runtime.whereis(AUDIT_NAME)
    try:
        return None if ref is None else ref.ask(GetAuditHealth(), timeout=timeout).key_fingerprint
    except Exception:  # noqa: BLE001 - the actor busy or gone: not known
        return None
