"""Reading entries back for a consumer that acts on them: each one verified first.

The trade ledger (``xorj_actors.execution``) reads its trades back from the log after a restart;
an entry whose hash or HMAC does not recompute is refused, loudly, never acted on.
"""

from __future__ import annotations

from typing import Any

from xorj_actors.audit._chain import AuditEntry, chain_hash, chain_hmac, entry_bytes
from xorj_actors.audit._store import COLUMNS, AuditStoreError, Store, qualified_table

__all__ = ["UnverifiedEntry", "verified_entries"]


class UnverifiedEntry(AuditStoreError):
    """An entry read back does not verify: the log was edited."""


def verified_entries(
    store: Store,
    key: bytes,
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
    return [_verified(row, key) for row in store.db.execute_sql(sql, params).fetchall()]


def _verified(row: tuple, key: bytes) -> AuditEntry:
    entry = AuditEntry(*row)
    canonical = entry_bytes(*row[:8])
    if chain_hash(entry.prev_hash, canonical) != entry.hash or chain_hmac(key, entry.hash) != entry.hmac:
        raise UnverifiedEntry(
            f"audit entry {entry.sequence} ({entry.event_type} {entry.correlation_id}) does not verify:"
            " the log was edited; run `xorj-actors audit verify`"
        )
    return entry
