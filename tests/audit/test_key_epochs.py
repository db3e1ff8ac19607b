"""Key epochs (docs/AUDIT.md, "Key epochs"): a rotation of the audit HMAC key appends a
KEY_ROTATION entry under the old key, every later entry is MACed under the new one, and verify,
the writer's restart and the readers follow the epochs; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from xorj_actors.audit import (
    AuditLog,
    AuditSettings,
    AuditStoreError,
    KeyRing,
    chain_hash,
    chain_hmac,
    entry_bytes,
    fingerprint,
    load_key_ring,
    open_store,
    parse_retired,
    verified_entries,
    verify_store,
)
from xorj_actors.audit import _verify
from tests.plugins.audit import TEST_KEY

OLD = TEST_KEY.encode()
NEW = b"the-next-audit-hmac-key-of-this-test-suite-0001"
LATER = b"a-third-audit-hmac-key-nobody-retired-yet-00002"


def _open(settings: AuditSettings, data_dir: Path, keys: KeyRing) -> AuditLog:
    store = open_store(settings, data_dir)
    store.close()
    return AuditLog(store, keys, rotate_at_start=True)  # as the engine opens it


def _append(log: AuditLog, n: int, start: int = 0) -> list:
    return [log.append("SYSTEM_EVENT", actor="test", details={"i": i}) for i in range(start, start + n)]


def _verify_with(settings: AuditSettings, data_dir: Path, keys: bytes | KeyRing, **kw):
    store = open_store(settings, data_dir, create=False)
    try:
        return verify_store(store, keys, **kw)
    finally:
        store.close()


def _rows(settings: AuditSettings, data_dir: Path) -> list[tuple]:
    store = open_store(settings, data_dir, create=False)
    try:
        from xorj_actors.audit._store import iter_rows

        return list(iter_rows(store))
    finally:
        store.close()


def _rotated_log(settings: AuditSettings, data_dir: Path, before: int = 3, after: int = 3) -> int:
    """A log of ``before`` entries under OLD, a rotation to NEW, ``after`` entries; the rotation's sequence."""
    log = _open(settings, data_dir, KeyRing(OLD))
    try:
        _append(log, before)
        rotation = log.rotate(NEW, "reload")
        _append(log, after, before)
    finally:
        log.close()
    return rotation.sequence


def test_a_log_without_rotations_is_what_it_was(audit_settings, data_dir) -> None:
    # Retired keys known, none used: every entry is exactly the entry of the single-key writer.
    log = _open(audit_settings, data_dir, KeyRing(OLD, (NEW, LATER)))
    try:
        entries = _append(log, 3)
    finally:
        log.close()
    prev = open_store(audit_settings, data_dir, create=False).genesis
    for e in entries:
        h = chain_hash(prev, entry_bytes(e.id, e.sequence, e.timestamp, e.event_type, e.severity, e.actor,
                                         e.correlation_id, e.details))
        assert (e.prev_hash, e.hash, e.hmac) == (prev, h, chain_hmac(OLD, h))
        prev = h
    result = _verify_with(audit_settings, data_dir, OLD)  # a bare key, as before epochs
    assert result.ok and result.epochs == (fingerprint(OLD),)
    assert "key epochs" not in result.describe()


def test_a_rotation_switches_keys_at_its_entry_and_verifies(audit_settings, data_dir) -> None:
    at = _rotated_log(audit_settings, data_dir)
    rows = _rows(audit_settings, data_dir)
    rotation = rows[at - 1]
    assert rotation[3] == "KEY_ROTATION" and rotation[10] == chain_hmac(OLD, rotation[9])
    assert json.loads(rotation[7]) == {"old_fingerprint": fingerprint(OLD), "new_fingerprint": fingerprint(NEW),
                                       "reason": "reload"}
    assert all(r[10] == chain_hmac(OLD, r[9]) for r in rows[: at - 1])
    assert all(r[10] == chain_hmac(NEW, r[9]) for r in rows[at:]) and len(rows) == at + 3
    result = _verify_with(audit_settings, data_dir, KeyRing(NEW, (OLD,)))
    assert result.ok and result.epochs == (fingerprint(OLD), fingerprint(NEW))
    assert f"2 key epochs ({fingerprint(OLD)} -> {fingerprint(NEW)})" in result.describe()
    # A reader of single entries takes either epoch's key.
    store = open_store(audit_settings, data_dir, create=False)
    try:
        assert len(verified_entries(store, KeyRing(NEW, (OLD,)))) == len(rows)
    finally:
        store.close()


def test_writers_racing_a_rotation_are_each_on_one_side_of_it(audit_settings, data_dir) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            log.append("SYSTEM_EVENT", actor="racer", details={})

    threads = [threading.Thread(target=write) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        _append(log, 50)
        rotation = log.rotate(NEW, "scheduled")
        _append(log, 50)
    finally:
        stop.set()
        for t in threads:
            t.join()
        log.close()
    rows = _rows(audit_settings, data_dir)
    assert len(rows) > 101 + 4  # the racers wrote on both sides
    assert all(r[10] == chain_hmac(OLD if r[1] <= rotation.sequence else NEW, r[9]) for r in rows)
    assert _verify_with(audit_settings, data_dir, KeyRing(NEW, (OLD,))).ok


def test_verify_names_the_missing_key_of_an_epoch(audit_settings, data_dir) -> None:
    at = _rotated_log(audit_settings, data_dir)
    missing_new = _verify_with(audit_settings, data_dir, KeyRing(OLD))
    assert not missing_new.ok and missing_new.broken_sequence == at
    assert f"rotates to the key with fingerprint {fingerprint(NEW)}, which is not known" in missing_new.reason
    missing_old = _verify_with(audit_settings, data_dir, KeyRing(NEW))
    assert not missing_old.ok and missing_old.broken_sequence == 1
    assert f"nor under any known key, fingerprints {fingerprint(NEW)}" in missing_old.reason
    for text in (missing_new.reason, missing_old.reason):
        assert OLD.decode() not in text and NEW.decode() not in text


def _insert(raw_sql, row: tuple, prev: str, key: bytes) -> str:
    h = chain_hash(prev, entry_bytes(*row))
    raw_sql("INSERT INTO {t} (id, sequence, timestamp, event_type, severity, actor, correlation_id, details,"
            " prev_hash, hash, hmac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", *row, prev, h, chain_hmac(key, h))
    return h


def _row(seq: int, event_type: str = "SYSTEM_EVENT", details: str = "{}") -> tuple:
    return (f"00000000-0000-7000-8000-{seq:012d}", seq, "2026-01-01T00:00:00.000000Z", event_type, "INFO",
            "intruder", None, details)


def test_an_old_key_entry_after_the_rotation_is_caught(audit_settings, data_dir, raw_sql) -> None:
    at = _rotated_log(audit_settings, data_dir, after=0)
    head = _rows(audit_settings, data_dir)[-1]
    _insert(raw_sql, _row(at + 1), head[9], OLD)  # written with the retired key, by its holder
    result = _verify_with(audit_settings, data_dir, KeyRing(NEW, (OLD,)))
    assert not result.ok and result.broken_sequence == at + 1
    assert (f"entry {at + 1} is MACed under the key with fingerprint {fingerprint(OLD)}, not under its epoch's "
            f"key {fingerprint(NEW)}") in result.reason


def test_a_forged_rotation_is_caught(audit_settings, data_dir, raw_sql) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _append(log, 2)
    finally:
        log.close()
    head = _rows(audit_settings, data_dir)[-1]
    # One who holds a retired key LATER claims a rotation from it, under it: not this epoch's key.
    forged = json.dumps({"new_fingerprint": fingerprint(LATER), "old_fingerprint": fingerprint(LATER),
                         "reason": "reload"}, sort_keys=True, separators=(",", ":"))
    _insert(raw_sql, _row(3, "KEY_ROTATION", forged), head[9], LATER)
    result = _verify_with(audit_settings, data_dir, KeyRing(OLD, (LATER,)))
    assert not result.ok and result.broken_sequence == 3
    assert "not under its epoch's key" in result.reason
    # Under the epoch's key but naming another old key: a forged rotation all the same.
    raw_sql("DELETE FROM {t} WHERE sequence = 3")
    _insert(raw_sql, _row(3, "KEY_ROTATION", forged), head[9], OLD)
    result = _verify_with(audit_settings, data_dir, KeyRing(OLD, (LATER,)))
    assert not result.ok and result.broken_sequence == 3 and "a forged rotation" in result.reason


def test_the_parallel_walk_follows_the_epochs(audit_settings, data_dir, raw_sql, monkeypatch) -> None:
    monkeypatch.setattr(_verify, "PARALLEL_MIN_ENTRIES", 1)
    monkeypatch.setattr(_verify, "_SPAWN_FACTOR", 1)
    at = _rotated_log(audit_settings, data_dir, before=40, after=40)
    walked = []
    parallel = _verify._verify_parallel
    monkeypatch.setattr(_verify, "_verify_parallel", lambda *a, **k: walked.append(parallel(*a, **k)) or walked[-1])
    result = _verify_with(audit_settings, data_dir, KeyRing(NEW, (OLD,)), workers=3)
    assert result.ok and result.epochs == (fingerprint(OLD), fingerprint(NEW)) and result.entries == 81
    assert walked == [(fingerprint(OLD), fingerprint(NEW))]  # the parallel walk's own answer, not the serial pass's
    # A range that begins after the rotation with an entry MACed under the old key: caught.
    head = _rows(audit_settings, data_dir)[-1]
    _insert(raw_sql, _row(head[1] + 1), head[9], OLD)
    broken = _verify_with(audit_settings, data_dir, KeyRing(NEW, (OLD,)), workers=3)
    assert not broken.ok and broken.broken_sequence == head[1] + 1 and at < head[1]


def test_a_restart_with_a_new_key_rotates_at_start_up(audit_settings, data_dir, monkeypatch) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _append(log, 2)
    finally:
        log.close()
    monkeypatch.setenv(audit_settings.hmac_key_env, NEW.decode())
    monkeypatch.delenv(audit_settings.retired_hmac_keys_env, raising=False)
    with pytest.raises(AuditStoreError) as refused:  # the old key not retired: the log cannot go on
        AuditLog.open(audit_settings, data_dir, "production", rotate_at_start=True)
    assert f"known fingerprints: {fingerprint(NEW)}" in str(refused.value) and NEW.decode() not in str(refused.value)
    monkeypatch.setenv(audit_settings.retired_hmac_keys_env, f"{LATER.decode()},{OLD.decode()}")
    with pytest.raises(AuditStoreError, match="only the engine opens a key epoch at its start"):
        AuditLog.open(audit_settings, data_dir, "production")  # a CLI's writer: refused, nothing written
    assert len(_rows(audit_settings, data_dir)) == 2
    log = AuditLog.open(audit_settings, data_dir, "production", rotate_at_start=True)
    try:
        first = log.append("SYSTEM_EVENT", actor="test", details={"after": "restart"})
    finally:
        log.close()
    rows = _rows(audit_settings, data_dir)
    assert [r[3] for r in rows[2:]] == ["KEY_ROTATION", "SYSTEM_EVENT"] and first.sequence == 4
    assert json.loads(rows[2][7])["reason"] == "start-up" and rows[2][10] == chain_hmac(OLD, rows[2][9])
    assert first.hmac == chain_hmac(NEW, first.hash)
    # Once more with the same keys: the head is in the new epoch, nothing to rotate.
    log = AuditLog.open(audit_settings, data_dir, "production")
    log.close()
    assert len(_rows(audit_settings, data_dir)) == 4
    assert _verify_with(audit_settings, data_dir, load_key_ring(audit_settings, "production")).ok


def test_a_restart_after_an_unconfirmed_rotation_follows_it(audit_settings, data_dir) -> None:
    # The head is the KEY_ROTATION entry itself: the writer continues in the epoch it opened.
    at = _rotated_log(audit_settings, data_dir, after=0)
    log = _open(audit_settings, data_dir, KeyRing(NEW, (OLD,)))
    try:
        nxt = log.append("SYSTEM_EVENT", actor="test")
    finally:
        log.close()
    assert nxt.sequence == at + 1 and nxt.hmac == chain_hmac(NEW, nxt.hash)


def test_key_rotation_entries_come_only_from_a_rotation(audit_settings, data_dir) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        with pytest.raises(ValueError, match="written only by a key rotation"):
            log.append("KEY_ROTATION", actor="test", details={"new_fingerprint": fingerprint(NEW)})
        with pytest.raises(ValueError, match="contains a comma"):
            log.rotate(b"a-key-with-a-comma,that-could-never-be-retired-000", "reload")
        with pytest.raises(ValueError, match="rotation reason"):
            log.rotate(NEW, "whim")
        assert log.rotate(OLD, "reload") is None  # the key in use: nothing to rotate
    finally:
        log.close()
    assert _rows(audit_settings, data_dir) == []


def test_the_retired_keys_are_a_checked_list() -> None:
    assert parse_retired(f"{OLD.decode()}, {NEW.decode()}", "R") == (OLD, NEW)
    assert parse_retired("", "R") == ()
    with pytest.raises(ValueError, match="retired audit key 2 in R is too short") as short:
        parse_retired(f"{OLD.decode()},short-secret", "R")
    assert "short-secret" not in str(short.value)
    assert "current=" in repr(KeyRing(OLD, (NEW,))) and OLD.decode() not in repr(KeyRing(OLD, (NEW,)))


@pytest.mark.ministack
def test_anchors_and_a_restore_across_an_epoch(audit_settings, anchor_settings, data_dir, tmp_path, monkeypatch,
                                               capsys) -> None:
    from tests.audit.test_audit_anchor import _anchored_config
    from tests.audit.test_audit_verify import fill, run_cli
    from tests.plugins.audit import lose_database

    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    fill(audit_settings, data_dir, 4)
    assert run_cli(["anchor", *common]) == 0  # a head of the first epoch, MACed under OLD
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        log.rotate(NEW, "reload")
        _append(log, 3)
    finally:
        log.close()
    monkeypatch.setenv(audit_settings.hmac_key_env, NEW.decode())
    monkeypatch.setenv(audit_settings.retired_hmac_keys_env, OLD.decode())
    assert run_cli(["anchor", *common]) == 0  # the segment from the rotation on, its head under NEW
    before = _rows(audit_settings, data_dir)
    capsys.readouterr()
    assert run_cli(["verify", *common]) == 0
    out = capsys.readouterr().out
    assert "2 anchors matched" in out and f"2 key epochs ({fingerprint(OLD)} -> {fingerprint(NEW)})" in out
    lose_database(audit_settings, data_dir)
    assert run_cli(["restore", "--from-anchors", *common]) == 0
    assert _rows(audit_settings, data_dir) == before
    # Without the old epoch's key the first anchor's HMAC verifies under no known key.
    monkeypatch.delenv(audit_settings.retired_hmac_keys_env)
    capsys.readouterr()
    assert run_cli(["verify", *common]) == 1
    assert "its HMAC verifies under no known audit key" in capsys.readouterr().err


def test_the_state_file_follows_the_epoch(tmp_path) -> None:
    from xorj_actors.audit import EpochMap, state_keys
    from xorj_actors.kill_switch import KillSwitchState, PersistedState, StateFile

    path = tmp_path / "kill_switch.json"
    old_key, _ = state_keys(KeyRing(OLD), EpochMap())
    StateFile(path, old_key).save(PersistedState(state=KillSwitchState.ARMED, epoch=7))
    new_key, retired = state_keys(KeyRing(NEW, (OLD,)), EpochMap(keys=(OLD,)))  # a start-up rotation to come
    after = StateFile(path, new_key, retired)
    reading = after.read()
    assert reading.retired_key and reading.state is not None and reading.state.epoch == 7
    after.save(reading.state)  # what the kill switch does at start, and at a live rotation
    assert not StateFile(path, new_key).read().retired_key and StateFile(path, new_key).read().state.epoch == 7
    # Under a key of no known epoch it stays fail-closed.
    unknown = StateFile(path, state_keys(KeyRing(LATER), EpochMap())[0]).read()
    assert unknown.state is None and "does not verify" in unknown.problem


def test_a_range_wholly_under_the_old_key_after_a_rotation_is_caught(audit_settings, data_dir, raw_sql,
                                                                     monkeypatch) -> None:
    # Three ranges of 27 rows: the rotation ends the second; the third, all MACed under the old
    # key, verifies on its own: only the link between the ranges' epochs catches it.
    monkeypatch.setattr(_verify, "PARALLEL_MIN_ENTRIES", 1)
    monkeypatch.setattr(_verify, "_SPAWN_FACTOR", 1)
    at = _rotated_log(audit_settings, data_dir, before=53, after=0)
    assert at == 54
    prev = _rows(audit_settings, data_dir)[-1][9]
    for seq in range(55, 82):
        prev = _insert(raw_sql, _row(seq), prev, OLD)
    result = _verify_with(audit_settings, data_dir, KeyRing(NEW, (OLD,)), workers=3)
    assert not result.ok and result.broken_sequence == 55 and "not under its epoch's key" in result.reason
    # The parallel walk itself refuses it: the third range verifies on its own, the ranges' epochs do not link.
    ring = KeyRing(NEW, (OLD,))
    alone, _ = _verify._verify_range(audit_settings, data_dir, ring, (), 54, 81)
    assert alone.ok and alone.epochs == (fingerprint(OLD),)
    store = open_store(audit_settings, data_dir, create=False)
    try:
        assert _verify._verify_parallel(store, ring, (), 81, 3, "spawn") is None
        raw_sql("DELETE FROM {t} WHERE sequence > 54")
        assert _verify._verify_parallel(store, ring, (), 54, 2, "spawn") == (fingerprint(OLD), fingerprint(NEW))
    finally:
        store.close()
