"""When the engine was last alive, as the kill switch's start-up reads it back (both backends).

``read_halt_history`` gives the time of the last kill-switch entry before this start's marker, or
of the last ``alive`` entry after it; every entry it uses is verified, so an edited one is never
read as a time (the kill switch then starts halted, and a halt wins over the downtime policy).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from xorj_actors.audit import (
    KILL_SWITCH_ACTOR,
    KILL_SWITCH_ALIVE_ACTOR,
    KILL_SWITCH_STARTING,
    AuditLog,
    AuditSettings,
    UnverifiedEntry,
    open_store,
    read_halt_history,
)
from xorj_actors.kill_switch import HaltHistory


def seconds(timestamp: str) -> float:
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def write(settings: AuditSettings, data_dir: Path, entries: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    log = AuditLog.open(settings, data_dir, "production")
    try:
        return [log.append("SYSTEM_EVENT", actor=actor, details=details) for actor, details in entries]
    finally:
        log.close()


def history(settings: AuditSettings, data_dir: Path, key: bytes) -> HaltHistory:
    store = open_store(settings, data_dir)
    try:
        return read_halt_history(store, key)
    finally:
        store.close()


STARTED = (KILL_SWITCH_ACTOR, {"what": "kill switch started", "state": "ARMED", "alive_every_s": 60.0})
ALIVE = (KILL_SWITCH_ALIVE_ACTOR, {"what": "alive"})
MARKER = (KILL_SWITCH_ACTOR, {"what": KILL_SWITCH_STARTING})
TRADE = ("vault-0001", {"i": 1})


def test_the_last_alive_entry_before_this_start_is_when_it_was_last_up(
    audit_settings: AuditSettings, data_dir: Path, audit_key: bytes
) -> None:
    e = write(audit_settings, data_dir, [MARKER, STARTED, TRADE, ALIVE, TRADE, ALIVE, TRADE, MARKER, TRADE])
    h = history(audit_settings, data_dir, audit_key)
    assert h.seen_alive and h.last_alive == seconds(e[5].timestamp)  # the second alive, not the marker after it


def test_without_an_alive_entry_the_last_kill_switch_entry_counts(
    audit_settings: AuditSettings, data_dir: Path, audit_key: bytes
) -> None:
    e = write(audit_settings, data_dir, [ALIVE, MARKER, STARTED, TRADE, TRADE, MARKER])
    h = history(audit_settings, data_dir, audit_key)
    assert h.last_alive == seconds(e[2].timestamp)  # the alive before "started" is older: not used


def test_an_older_versions_log_is_no_record(audit_settings: AuditSettings, data_dir: Path, audit_key: bytes) -> None:
    assert history(audit_settings, data_dir, audit_key).last_alive is None  # empty
    # An older version's start says nothing of alive entries: no record, whatever the times.
    old = write(audit_settings, data_dir, [(KILL_SWITCH_ACTOR, {"what": "kill switch started"}), MARKER])
    h = history(audit_settings, data_dir, audit_key)
    assert not h.seen_alive and h.last_alive == seconds(old[0].timestamp)


def test_an_edited_alive_entry_is_never_read_as_a_time(
    audit_settings: AuditSettings, data_dir: Path, audit_key: bytes, raw_sql: Callable[..., list[tuple]]
) -> None:
    e = write(audit_settings, data_dir, [MARKER, STARTED, ALIVE, MARKER])
    raw_sql('UPDATE {t} SET "timestamp" = ? WHERE "sequence" = ?', "2099-01-01T00:00:00.000000Z", e[2].sequence)
    with pytest.raises(UnverifiedEntry):
        history(audit_settings, data_dir, audit_key)


def test_an_older_versions_log_is_not_searched_for_alive_entries(
    audit_settings: AuditSettings, data_dir: Path, audit_key: bytes
) -> None:
    # No start of this log said it writes alive entries: the look-up is not made (its answer
    # would not be used), so an alive entry there is never read.
    e = write(audit_settings, data_dir, [(KILL_SWITCH_ACTOR, {"what": "kill switch started"}), ALIVE, MARKER])
    h = history(audit_settings, data_dir, audit_key)
    assert not h.seen_alive and h.last_alive == seconds(e[0].timestamp)


def test_the_last_alive_look_up_has_a_partial_index(
    audit_settings: AuditSettings, data_dir: Path, audit_key: bytes, raw_sql: Callable[..., list[tuple]]
) -> None:
    """The look-up is one step down an index of the alive entries alone, never a scan of the log."""
    write(audit_settings, data_dir, [MARKER, STARTED, *[TRADE, ALIVE] * 20, MARKER])
    lookup = (f"SELECT \"sequence\" FROM {{t}} WHERE \"actor\" = '{KILL_SWITCH_ALIVE_ACTOR}' AND \"sequence\" > 2"
              ' AND "sequence" < 44 ORDER BY "sequence" DESC LIMIT 1')
    if audit_settings.backend == "sqlite":
        (sql,) = raw_sql("SELECT sql FROM sqlite_master WHERE name = 'audit_entries_kill_switch_alive'")[0]
        plan = " ".join(str(r[-1]) for r in raw_sql("EXPLAIN QUERY PLAN " + lookup))
        assert "audit_entries_kill_switch_alive" in plan, plan
    else:
        (sql,) = raw_sql("SELECT indexdef FROM pg_indexes WHERE schemaname = ? AND indexname = 'audit_entries_kill_switch_alive'",
                         audit_settings.postgres.schema)[0]
        raw_sql("SET enable_seqscan = off")  # a table this small is scanned whatever the indexes
        plan = " ".join(str(r[0]) for r in raw_sql("EXPLAIN " + lookup))
        assert "audit_entries_kill_switch_alive" in plan, plan
    assert KILL_SWITCH_ALIVE_ACTOR in sql and "sequence" in sql
    assert raw_sql(lookup)[0][0] == 42 and history(audit_settings, data_dir, audit_key).seen_alive
