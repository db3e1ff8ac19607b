"""The single writer on both backends: durability, group commit, order, bad input, fail closed."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.plugins.audit import pg_connect
from xorj_actors.audit import (
    GENESIS_HASH,
    AuditLog,
    AuditSettings,
    AuditStoreError,
    AuditTimeout,
    AuditUnavailable,
    CanonicalJSONError,
    EventType,
    Severity,
    chain_hmac,
    load_hmac_key,
    open_store,
    verify_store,
)


class Availability:
    """Records the writer's on_unavailable/on_available calls, as the kill switch would get them."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.down = threading.Event()
        self.up = threading.Event()

    def on_unavailable(self, reason: str) -> None:
        self.events.append(f"down: {reason}")
        self.down.set()

    def on_available(self) -> None:
        self.events.append("up")
        self.up.set()


def open_log(settings: AuditSettings, data_dir: Path, avail: Availability | None = None) -> AuditLog:
    return AuditLog.open(
        settings,
        data_dir,
        "production",
        on_unavailable=avail.on_unavailable if avail else None,
        on_available=avail.on_available if avail else None,
    )


def test_append_returns_a_committed_chained_entry(audit_settings, data_dir, audit_key, raw_sql):
    log = open_log(audit_settings, data_dir)
    try:
        first = log.append(
            EventType.TRADE_INTENT,
            actor="vault-7",
            correlation_id="trade-1",
            details={"amount": Decimal("12.50"), "mint": "JUP", "note": "naïve"},
        )
        second = log.append("HALT", actor="kill-switch", severity=Severity.CRITICAL)
    finally:
        log.close()
    assert (first.sequence, second.sequence) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    assert first.details == '{"amount":"12.50","mint":"JUP","note":"naïve"}'
    # A second connection (another process, after a crash) sees exactly what append returned.
    rows = raw_sql("SELECT sequence, id, hash, hmac, details FROM {t} ORDER BY sequence")
    assert rows == [
        (1, first.id, first.hash, first.hmac, first.details),
        (2, second.id, second.hash, second.hmac, second.details),
    ]


def test_sqlite_store_is_wal_with_full_sync(data_dir, audit_key):
    store = open_store(AuditSettings(), data_dir)
    try:
        assert store.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


def test_concurrent_appends_are_group_committed_gapless_and_in_caller_order(audit_settings, data_dir, audit_key):
    log = open_log(audit_settings, data_dir)
    threads, per_thread = 16, 40
    results: dict[int, list] = {}

    def writer(n: int) -> None:
        results[n] = [log.append("SYSTEM_EVENT", actor=f"w{n}", details={"i": i}) for i in range(per_thread)]

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    log.close()
    assert not any(w.is_alive() for w in workers), "an append hung"
    entries = [e for batch in results.values() for e in batch]
    assert sorted(e.sequence for e in entries) == list(range(1, threads * per_thread + 1))
    for batch in results.values():  # each caller's entries are chained in the order it appended them
        assert [e.sequence for e in batch] == sorted(e.sequence for e in batch)
    # One timestamp per transaction: fewer timestamps than entries means batches were shared.
    assert len({e.timestamp for e in entries}) < len(entries)
    store = open_store(audit_settings, data_dir, create=False)
    try:
        result = verify_store(store, audit_key)
    finally:
        store.close()
    assert result.ok and result.entries == threads * per_thread


def test_submit_returns_a_future_and_reopen_continues_the_chain(audit_settings, data_dir, audit_key):
    log = open_log(audit_settings, data_dir)
    futures = [log.submit("TRADE_EXECUTION", actor="pipeline", correlation_id=f"t{i}") for i in range(5)]
    last = [f.result(timeout=10) for f in futures][-1]
    log.close()
    log = open_log(audit_settings, data_dir)
    try:
        nxt = log.append("RECOVERY", actor="engine")
    finally:
        log.close()
    assert (nxt.sequence, nxt.prev_hash) == (last.sequence + 1, last.hash)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"details": {"x": float("nan")}}, CanonicalJSONError, "details.x"),
        ({"details": {"x": [1, float("inf")]}}, CanonicalJSONError, r"details.x\[1\]"),
        ({"details": {"when": object()}}, CanonicalJSONError, "not a JSON type"),
        ({"details": {1: "a"}}, CanonicalJSONError, "not a string"),
        ({"details": ["not", "a", "mapping"]}, CanonicalJSONError, "mapping"),
        ({"actor": ""}, ValueError, "actor"),
        ({"severity": "LOUD"}, ValueError, "severity"),
        ({"correlation_id": 42}, ValueError, "correlation_id"),
        ({"actor": "a\x00b"}, ValueError, "NUL"),
        ({"correlation_id": "t\ud800"}, ValueError, "surrogate"),
        ({"details": {"x": "\udfff"}}, CanonicalJSONError, "surrogate"),
        ({"actor": "a" * 257}, ValueError, "longer than 256"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(data_dir, audit_key, kwargs, error, message):
    log = open_log(AuditSettings(), data_dir)
    try:
        args = {"actor": "a", **kwargs}
        with pytest.raises(error, match=message):
            log.append("SYSTEM_EVENT", **args)
        with pytest.raises(ValueError, match="event_type"):
            log.append("TRADE_TELEPORT", actor="a")
        assert log.append("SYSTEM_EVENT", actor="a").sequence == 1
    finally:
        log.close()


def test_production_refuses_to_start_without_a_key(data_dir, monkeypatch):
    monkeypatch.delenv("XORJ_AUDIT_HMAC_KEY", raising=False)
    with pytest.raises(ValueError, match="XORJ_AUDIT_HMAC_KEY"):
        AuditLog.open(AuditSettings(), data_dir, "production")
    monkeypatch.setenv("XORJ_AUDIT_HMAC_KEY", "short")
    with pytest.raises(ValueError, match="too short"):
        AuditLog.open(AuditSettings(), data_dir, "production")


def test_development_without_a_key_uses_the_development_key(data_dir, monkeypatch):
    monkeypatch.delenv("XORJ_AUDIT_HMAC_KEY", raising=False)
    dev_key = load_hmac_key("XORJ_AUDIT_HMAC_KEY", "development")
    assert b"NOT-FOR-PRODUCTION" in dev_key and len(dev_key) >= 32
    log = AuditLog.open(AuditSettings(), data_dir, "development")
    try:
        entry = log.append("SYSTEM_EVENT", actor="a")
    finally:
        log.close()
    assert entry.hmac == chain_hmac(dev_key, entry.hash), "signed with the development key"
    store = open_store(AuditSettings(), data_dir)
    try:
        assert verify_store(store, dev_key).ok
    finally:
        store.close()
    with pytest.raises(ValueError, match="audit HMAC key missing"):
        AuditLog.open(AuditSettings(), data_dir, "production")


def test_reopening_with_another_key_is_refused(data_dir, audit_key, monkeypatch):
    log = open_log(AuditSettings(), data_dir)
    log.append("SYSTEM_EVENT", actor="a")
    log.close()
    monkeypatch.setenv("XORJ_AUDIT_HMAC_KEY", "another-key-another-key-another-key-!!")
    with pytest.raises(AuditStoreError, match="does not verify"):
        open_log(AuditSettings(), data_dir)


def test_closed_log_refuses_appends(data_dir, audit_key):
    log = open_log(AuditSettings(), data_dir)
    log.close()
    with pytest.raises(AuditUnavailable, match="closed"):
        log.append("SYSTEM_EVENT", actor="a")


def _lock_sqlite(path: Path) -> sqlite3.Connection:
    """Another connection holding an exclusive write lock: the store is really unavailable."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_sqlite_locked_store_fails_closed_and_writes_held_entries_in_order(data_dir, audit_key):
    settings = AuditSettings(sqlite_busy_timeout_s=0.1, retry_initial_s=0.02, retry_max_s=0.1, max_pending=600,
                             max_batch=8)
    avail = Availability()
    log = open_log(settings, data_dir, avail)
    before = log.append("SYSTEM_EVENT", actor="a", details={"n": -1})
    lock = _lock_sqlite(data_dir / "audit.db")
    try:
        futures = [log.submit("TRADE_INTENT", actor="p", details={"n": i}) for i in range(20)]
        assert avail.down.wait(10), "on_unavailable was not called"
        assert "locked" in avail.events[0]
        assert not log.available
        with pytest.raises(AuditTimeout, match="still queued"):
            log.append("SYSTEM_EVENT", actor="a", details={"n": 20}, timeout=0.2)
        # The bound: past max_pending new entries are refused, the held ones are kept.
        filler = [log.submit("SYSTEM_EVENT", actor="f") for _ in range(600 - log.pending)]
        with pytest.raises(AuditUnavailable, match="already wait"):
            log.submit("SYSTEM_EVENT", actor="refused")
        assert not any(f.done() for f in futures)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    entries = [f.result(timeout=10) for f in futures]
    for f in filler:
        f.result(timeout=10)
    assert avail.up.wait(5) and avail.events[-1] == "up" and log.available
    log.close()
    assert [e.sequence for e in entries] == list(range(2, 22))
    assert entries[0].prev_hash == before.hash
    store = open_store(settings, data_dir, create=False)
    try:
        result = verify_store(store, audit_key)
        timed_out = store.model.get(store.model.sequence == 22)
    finally:
        store.close()
    assert result.ok and result.entries == 1 + 20 + 1 + len(filler)
    assert timed_out.details == '{"n":20}'  # the caller timed out, the entry was still written


@pytest.fixture
def pg_database(audit_key):
    """A PostgreSQL database private to the test, so it can be made unreachable for real."""
    name = f"audit_outage_{int(time.time() * 1e6)}"
    admin = pg_connect()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_postgres_outage_fails_closed_and_writes_held_entries_in_order(pg_database, data_dir, audit_key):
    from tests.plugins.audit import postgres_settings

    base = postgres_settings("public", retry_initial_s=0.02, retry_max_s=0.1)
    settings = dataclasses.replace(base, postgres=dataclasses.replace(base.postgres, database=pg_database))
    avail = Availability()
    log = open_log(settings, data_dir, avail)
    before = log.append("SYSTEM_EVENT", actor="a")
    admin = pg_connect()
    try:
        with admin.cursor() as cur:
            # A real outage: the database refuses new connections and the writer's is killed.
            cur.execute(f'ALTER DATABASE "{pg_database}" ALLOW_CONNECTIONS false')
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (pg_database,)
            )
        futures = [log.submit("TRADE_INTENT", actor="p", details={"n": i}) for i in range(10)]
        assert avail.down.wait(10), "on_unavailable was not called"
        time.sleep(0.3)  # several failed reconnects
        assert not log.available and not any(f.done() for f in futures)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{pg_database}" ALLOW_CONNECTIONS true')
        admin.close()
    entries = [f.result(timeout=10) for f in futures]
    assert avail.up.wait(5) and log.available
    log.close()
    assert [e.sequence for e in entries] == list(range(2, 12))
    assert entries[0].prev_hash == before.hash
    store = open_store(settings, data_dir, create=False)
    try:
        assert verify_store(store, audit_key).entries == 11
    finally:
        store.close()


def test_postgres_locked_table_fails_closed_by_statement_timeout(pg_schema, data_dir, audit_key):
    from tests.plugins.audit import postgres_settings

    settings = postgres_settings(pg_schema, retry_initial_s=0.02, retry_max_s=0.1)
    avail = Availability()
    log = open_log(settings, data_dir, avail)
    log.append("SYSTEM_EVENT", actor="a")
    admin = pg_connect()
    admin.autocommit = False
    try:
        with admin.cursor() as cur:
            cur.execute(f'LOCK TABLE "{pg_schema}"."audit_entries" IN ACCESS EXCLUSIVE MODE')
        future = log.submit("HALT", actor="kill-switch")
        assert avail.down.wait(10) and "statement timeout" in avail.events[0]
        assert not future.done()
    finally:
        admin.rollback()
        admin.close()
    assert future.result(timeout=10).sequence == 2
    log.close()


def test_a_crashed_writer_refuses_entries_and_reports_it(data_dir, audit_key, monkeypatch):
    """FAKE fault: a bug inside the writer (cannot be caused for real), injected into _chain."""
    avail = Availability()
    log = open_log(AuditSettings(), data_dir, avail)
    log.append("SYSTEM_EVENT", actor="a")

    def broken_chain(batch):
        raise RuntimeError("injected bug")

    monkeypatch.setattr(log, "_chain", broken_chain)
    with pytest.raises(AuditUnavailable, match="closed before the entry was written"):
        log.append("SYSTEM_EVENT", actor="a", timeout=5)
    assert avail.down.wait(5) and "crashed" in avail.events[0]
    with pytest.raises(AuditUnavailable, match="closed"):
        log.append("SYSTEM_EVENT", actor="a")
    log.close()


def test_a_second_writer_on_the_same_store_is_detected_not_forked(audit_settings, data_dir, audit_key):
    """Two engines on one database (a real misconfiguration): the first one stops, loudly."""
    avail = Availability()
    first = open_log(audit_settings, data_dir, avail)
    first.append("SYSTEM_EVENT", actor="engine-a")
    second = open_log(audit_settings, data_dir)
    try:
        second.append("SYSTEM_EVENT", actor="engine-b")
        with pytest.raises(AuditTimeout, match="another writer touched the log"):
            first.append("SYSTEM_EVENT", actor="engine-a", timeout=1.0)
        assert avail.down.is_set() and avail.events[0].startswith("down: IntegrityError")
    finally:
        second.close()
        with pytest.raises(AuditUnavailable, match="unwritten"):
            first.close(timeout=0.5)
    store = open_store(audit_settings, data_dir, create=False)
    try:
        result = verify_store(store, audit_key)
    finally:
        store.close()
    assert result.ok and result.entries == 2  # the chain was not forked


def test_a_commit_that_landed_before_the_connection_died_is_not_written_twice(data_dir, audit_key, monkeypatch):
    """FAKE fault: "connection lost after COMMIT was sent" cannot be timed for real, so the
    writer's _commit is wrapped to commit for real and then raise, once."""
    avail = Availability()
    log = open_log(AuditSettings(retry_initial_s=0.01), data_dir, avail)
    real_commit = log._commit
    calls = []

    def commit_then_fail(entries):
        real_commit(entries)
        calls.append(len(entries))
        if len(calls) == 1:
            raise OSError("FAKE: connection lost after COMMIT")

    monkeypatch.setattr(log, "_commit", commit_then_fail)
    entry = log.append("TRADE_INTENT", actor="p", correlation_id="t1", timeout=5)
    after = log.append("TRADE_EXECUTION", actor="p", correlation_id="t1", timeout=5)
    log.close()
    assert avail.events == ["down: OSError: FAKE: connection lost after COMMIT", "up"]
    assert (entry.sequence, after.sequence) == (1, 2) and calls == [1, 1]
    store = open_store(AuditSettings(), data_dir, create=False)
    try:
        assert verify_store(store, audit_key).entries == 2
    finally:
        store.close()


def test_batches_respect_max_batch(data_dir, audit_key):
    log = open_log(AuditSettings(max_batch=4, max_wait_s=0.05), data_dir)
    futures = [log.submit("SYSTEM_EVENT", actor="a", details={"i": i}) for i in range(20)]
    entries = [f.result(timeout=10) for f in futures]
    log.close()
    assert [e.sequence for e in entries] == list(range(1, 21))
    per_transaction: dict[str, int] = {}
    for e in entries:
        per_transaction[e.timestamp] = per_transaction.get(e.timestamp, 0) + 1
    assert max(per_transaction.values()) <= 4
    assert max(per_transaction.values()) > 1  # the writer waited for company (max_wait_s)
