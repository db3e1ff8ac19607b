"""Reading entries back for a consumer that acts on them: each one verified first.

The trade ledger (``xorj_actors.execution``) reads its trades back from the log after a restart,
and a node that takes a vault over reads the open trades other nodes left in their chains; an
entry whose hash or HMAC does not recompute is refused, loudly, never acted on.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from xorj_actors.audit._chain import AuditEntry, chain_step, entry_bytes
from xorj_actors.audit._epochs import EpochMap, read_epochs
from xorj_actors.audit._keys import KeyRing, as_ring
from xorj_actors.audit._store import COLUMNS, AuditStoreError, Store, chain_store, list_chains, qualified_table

__all__ = ["OpenedIn", "UnverifiedEntry", "chain_epochs", "entries_by_chain", "open_entries_by_chain", "verified_entries"]

#: Correlation ids per ``IN (...)`` list (SQLite allows 32766 parameters per statement).
_IDS_PER_QUERY = 500


class UnverifiedEntry(AuditStoreError):
    """An entry read back does not verify: the log was edited."""


def verified_entries(
    store: Store,
    key: bytes | KeyRing,
    *,
    correlation_id: str | None = None,
    event_types: tuple[str, ...] = (),
    opened_by: str | None = None,
    unless_closed_by: str | None = None,
) -> list[AuditEntry]:
    """Entries matching every given filter, by sequence, each checked against its hash and HMAC.

    Args:
        store: the audit store.
        key: the HMAC key.
        correlation_id: only this correlation id's entries.
        event_types: only these event types.
        opened_by: only correlation ids with an entry of this event type...
        unless_closed_by: ...and none of this one (the open trades of a ledger).

    Raises:
        UnverifiedEntry: an entry does not verify (nothing is returned).
    """
    p, table = store.db.param, qualified_table(store)
    conditions: list[str] = []
    params: list[Any] = []
    if correlation_id is not None:
        conditions.append(f'"correlation_id" = {p}')
        params.append(correlation_id)
    if event_types:
        conditions.append(f'"event_type" IN ({", ".join([p] * len(event_types))})')
        params.extend(event_types)
    if opened_by is not None:
        opened = f'SELECT "correlation_id" FROM {table} WHERE "event_type" = {p} AND "correlation_id" IS NOT NULL'
        params.append(opened_by)
        if unless_closed_by is not None:
            opened += (
                f' AND "correlation_id" NOT IN (SELECT "correlation_id" FROM {table} WHERE "event_type" = {p}'
                ' AND "correlation_id" IS NOT NULL)'
            )
            params.append(unless_closed_by)
        conditions.append(f'"correlation_id" IN ({opened})')
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    sql = f'SELECT {cols} FROM {table} {where}ORDER BY "sequence"'
    rows = store.db.execute_sql(sql, params).fetchall()
    epochs = chain_epochs(store, key) if rows else EpochMap()
    return [_verified(row, epochs) for row in rows]


def chain_epochs(store: Store, keys: bytes | KeyRing) -> EpochMap:
    """``store``'s chain's key epochs (:func:`read_epochs`).

    Raises:
        UnverifiedEntry: a ``KEY_ROTATION`` entry breaks the rules (a forged or edited rotation).
    """
    try:
        return read_epochs(store, as_ring(keys))
    except ValueError as exc:
        raise UnverifiedEntry(f"audit chain {store.chain}: {exc}; run `xorj-actors audit verify`") from None


def _verified(row: tuple, epochs: EpochMap, chain: str | None = None) -> AuditEntry:
    """``row`` as an entry, if its hash recomputes and its HMAC verifies under ITS epoch's key
    (a retired key only up to the rotation that retired it: docs/AUDIT.md, "Key epochs")."""
    entry = AuditEntry(*row)
    pads = epochs.pads_at(entry.sequence)
    good = False
    if pads is not None:
        _, h, tag = chain_step(pads, bytes.fromhex(entry.prev_hash), entry_bytes(*row[:8]))
        good = h == entry.hash and tag == entry.hmac
    if not good:
        where = "" if chain is None else f" of chain {chain}"
        why = "the log was edited" if pads is not None else "its key epoch's key is not known here"
        raise UnverifiedEntry(
            f"audit entry {entry.sequence}{where} ({entry.event_type} {entry.correlation_id}) does not verify"
            f" under its key epoch's key: {why}; run `xorj-actors audit verify`"
        )
    return entry


class OpenedIn(enum.Enum):
    """Whose open correlations :func:`open_entries_by_chain` reads."""

    #: Opened in the store's own chain: this node's own, after a restart.
    OWN_CHAIN = "own_chain"
    #: Opened in any other chain: what other nodes (or this node's pre-cluster self) left open.
    OTHER_CHAINS = "other_chains"


def _select(store: Store, chains: Sequence[str], where: str, params: Sequence[Any]) -> list[tuple[str, tuple]]:
    """``(chain, row)`` of every chain's rows matching ``where`` (its parameters once per chain),
    in one statement; by chain (in ``chains`` order), then sequence."""
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    parts = [
        f"SELECT {i} AS chain_no, {cols} FROM {qualified_table(store, c)} WHERE {where}"
        for i, c in enumerate(chains)
    ]
    sql = " UNION ALL ".join(parts) + ' ORDER BY chain_no, "sequence"'
    rows = store.db.execute_sql(sql, list(params) * len(chains)).fetchall()
    return [(chains[r[0]], tuple(r[1:])) for r in rows]


def _by_chain(
    store: Store, chains: Sequence[str], rows: list[tuple[str, tuple]], key: bytes | KeyRing
) -> dict[str, list[AuditEntry]]:
    found: dict[str, list[AuditEntry]] = {c: [] for c in chains}
    epochs: dict[str, EpochMap] = {}
    for chain, row in rows:
        if chain not in epochs:
            epochs[chain] = chain_epochs(chain_store(store, chain), key)
        found[chain].append(_verified(row, epochs[chain], chain))
    return {c: entries for c, entries in found.items() if entries}


def entries_by_chain(
    store: Store, key: bytes | KeyRing, *, correlation_id: str, event_types: tuple[str, ...] = ()
) -> dict[str, list[AuditEntry]]:
    """One correlation id's entries in every chain of ``store``'s database, each verified: by
    chain (``default`` first, chains without any left out), each chain's by sequence.

    Raises:
        UnverifiedEntry: an entry does not verify (nothing is returned).
    """
    chains = list_chains(store)
    if not chains:
        return {}
    p = store.db.param
    where, params = f'"correlation_id" = {p}', [correlation_id]
    if event_types:
        where += f' AND "event_type" IN ({", ".join([p] * len(event_types))})'
        params.extend(event_types)
    return _by_chain(store, chains, _select(store, chains, where, params), key)


def open_entries_by_chain(
    store: Store,
    key: bytes | KeyRing,
    *,
    opened_by: str,
    unless_closed_by: str,
    event_types: tuple[str, ...],
    opened_in: OpenedIn = OpenedIn.OWN_CHAIN,
) -> dict[str, list[AuditEntry]]:
    """The open correlations' entries, from every chain, each verified.

    A correlation id is open when a chain of ``opened_in`` holds an entry of type ``opened_by``
    for it and NO chain holds one of type ``unless_closed_by`` (an outcome written by whichever
    node settled it closes it everywhere). Its entries of ``event_types`` are read from every
    chain (a trade taken over continues in its new owner's chain). By chain (``default`` first,
    chains without any left out), each chain's by sequence. One store with one chain: exactly the
    entries :func:`verified_entries` gives with ``opened_by``/``unless_closed_by``.

    Raises:
        UnverifiedEntry: an entry does not verify (nothing is returned).
    """
    chains = list_chains(store)
    openers = [c for c in chains if (c == store.chain) == (opened_in is OpenedIn.OWN_CHAIN)]
    if not openers:
        return {}
    p = store.db.param

    def typed(chain: str) -> str:
        return (f'SELECT "correlation_id" FROM {qualified_table(store, chain)}'
                f' WHERE "event_type" = {p} AND "correlation_id" IS NOT NULL')

    sql = (
        f'SELECT DISTINCT "correlation_id" FROM ({" UNION ".join(typed(c) for c in openers)}) AS opened'
        f' WHERE "correlation_id" NOT IN ({" UNION ALL ".join(typed(c) for c in chains)})'
    )
    ids = [r[0] for r in store.db.execute_sql(sql, [opened_by] * len(openers) + [unless_closed_by] * len(chains))]
    rows: list[tuple[str, tuple]] = []
    types = ", ".join([p] * len(event_types))
    for i in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[i : i + _IDS_PER_QUERY]
        where = f'"event_type" IN ({types}) AND "correlation_id" IN ({", ".join([p] * len(chunk))})'
        rows += _select(store, chains, where, [*event_types, *chunk])
    order = {c: n for n, c in enumerate(chains)}
    rows.sort(key=lambda r: (order[r[0]], r[1][1]))
    return _by_chain(store, chains, rows, key)
