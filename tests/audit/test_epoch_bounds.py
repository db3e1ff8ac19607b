"""Key epoch boundaries (docs/AUDIT.md, "Key epochs"): a retired key is valid only up to and
including the KEY_ROTATION entry that retired it. The readers that act on entries, the
kill switch's state file, the writer's start-up and the anchorer all hold to it (review 17)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from xorj_actors.audit import (
    AUDIT_NAME,
    AnchorError,
    Anchorer,
    Audit,
    AuditSettings,
    RotateKey,
    list_anchors,
    s3_client,
    AuditLog,
    AuditStoreError,
    EpochMap,
    KeyRing,
    UnverifiedEntry,
    chain_hash,
    chain_hmac,
    chain_state_keys,
    entry_bytes,
    fingerprint,
    open_store,
    read_halt_history,
    verified_entries,
)
from xorj_actors.audit._epochs import build_epochs, read_epochs
from xorj_actors.kill_switch import HaltBoard, KillSwitchState, PersistedState, StateFile, derive_state_key
from tests.helpers import wait_until
from tests.audit.test_key_epochs import LATER, NEW, OLD, _append, _insert, _open, _row, _rows, _verify_with

RING = KeyRing(NEW, (OLD,))


def _halt(log: AuditLog, state: str, epoch: int):
    return log.append("HALT", actor="kill_switch",
                      details={"what": "t", "transition": {"state": state, "epoch": epoch, "factor": 1.0}})


def _armed(epoch: int) -> str:
    return json.dumps({"transition": {"epoch": epoch, "factor": 1.0, "state": "ARMED"}, "what": "t"},
                      sort_keys=True, separators=(",", ":"))


def _rotation_json(old: bytes, new: bytes) -> str:
    """A KEY_ROTATION entry's details from ``old`` to ``new``, as the writer writes them."""
    return json.dumps({"new_fingerprint": fingerprint(new), "old_fingerprint": fingerprint(old), "reason": "reload"},
                      sort_keys=True, separators=(",", ":"))


def _rewrite(raw_sql, row: tuple, details: str, key: bytes) -> None:
    """Rewrite ``row``'s details in place, its hash recomputed and MACed under ``key``."""
    h = chain_hash(row[8], entry_bytes(*row[:7], details))
    raw_sql("UPDATE {t} SET details = ?, hash = ?, hmac = ? WHERE sequence = ?", details, h, chain_hmac(key, h), row[1])


def _read(audit_settings, data_dir, read):
    store = open_store(audit_settings, data_dir, create=False)
    try:
        return read(store)
    finally:
        store.close()


def test_a_retired_key_cannot_forge_an_entry_after_its_rotation(audit_settings, data_dir, raw_sql) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _halt(log, "ARMED", 1)
        log.rotate(NEW, "reload")
        _halt(log, "TRIGGERED", 2)
        _append(log, 2)
    finally:
        log.close()
    # Untouched, every epoch's entries read back (the first epoch's under the retired key).
    history = _read(audit_settings, data_dir, lambda s: read_halt_history(s, RING))
    assert history.last.state is KillSwitchState.TRIGGERED
    assert len(_read(audit_settings, data_dir, lambda s: verified_entries(s, RING))) == 5
    victim = next(r for r in _rows(audit_settings, data_dir) if '"TRIGGERED"' in r[7])
    _rewrite(raw_sql, victim, _armed(2), OLD)  # one who holds only the RETIRED key
    with pytest.raises(UnverifiedEntry, match=f"audit entry {victim[1]} .* does not verify under its key epoch's key"):
        _read(audit_settings, data_dir, lambda s: read_halt_history(s, RING))
    with pytest.raises(UnverifiedEntry):
        _read(audit_settings, data_dir, lambda s: verified_entries(s, RING))
    assert not _verify_with(audit_settings, data_dir, RING).ok


def test_a_new_key_cannot_forge_an_entry_before_the_rotation(audit_settings, data_dir, raw_sql) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _halt(log, "TRIGGERED", 1)
        log.rotate(NEW, "reload")
    finally:
        log.close()
    victim = _rows(audit_settings, data_dir)[0]
    _rewrite(raw_sql, victim, _armed(1), NEW)
    with pytest.raises(UnverifiedEntry, match="audit entry 1 "):
        _read(audit_settings, data_dir, lambda s: read_halt_history(s, RING))


def test_the_epochs_follow_verifys_rules() -> None:
    def rotation(seq: int, prev: str, old: bytes, new: bytes, under: bytes) -> tuple:
        details = _rotation_json(old, new)
        row = _row(seq, "KEY_ROTATION", details)
        h = chain_hash(prev, entry_bytes(*row))
        return (*row, prev, h, chain_hmac(under, h))

    ring = KeyRing(LATER, (OLD, NEW))
    first = rotation(3, "00" * 32, OLD, NEW, OLD)
    second = rotation(7, first[9], NEW, LATER, NEW)
    epochs = build_epochs(ring, [first, second])
    assert [epochs.key_at(s) for s in (1, 3, 4, 7, 8, 100)] == [OLD, OLD, NEW, NEW, LATER, LATER]
    assert epochs.left(OLD) and epochs.left(NEW) and not epochs.left(LATER) and epochs.last_rotation == (7, fingerprint(LATER))
    assert OLD.decode() not in repr(epochs)
    with pytest.raises(ValueError, match="not MACed under its epoch's key"):  # the second under the retired key
        build_epochs(ring, [first, rotation(7, first[9], NEW, LATER, OLD)])
    with pytest.raises(ValueError, match="a forged rotation"):  # under its epoch's key, naming another old one
        build_epochs(ring, [first, rotation(7, first[9], OLD, LATER, NEW)])
    with pytest.raises(ValueError, match="rotates back"):  # a key opens one epoch only
        build_epochs(ring, [first, rotation(7, first[9], NEW, OLD, NEW)])
    # No rotation: one epoch, the first entry's key; an unknown key ends what can be checked.
    assert build_epochs(ring, [], OLD).key_at(5) == OLD
    assert build_epochs(KeyRing(NEW, (OLD,)), [first, second]).key_at(8) is None


def test_the_state_file_under_a_retired_key_is_read_only_just_after_its_rotation(audit_settings, data_dir,
                                                                                 tmp_path) -> None:
    path = tmp_path / "kill_switch.json"
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _append(log, 1)
        log.rotate(NEW, "reload")
        _append(log, 1)
    finally:
        log.close()
    # Written under OLD before the rotation, the process gone before the rekey: still read.
    StateFile(path, derive_state_key(OLD)).save(PersistedState(state=KillSwitchState.TRIGGERED, epoch=3))
    reading = StateFile(path, *chain_state_keys(audit_settings, data_dir, RING)).read()
    assert reading.retired_key and reading.state.state is KillSwitchState.TRIGGERED
    log = _open(audit_settings, data_dir, RING)
    try:
        log.rotate(LATER, "reload")
    finally:
        log.close()
    # A later rotation: OLD is no longer the key just before the current one; a file forged under
    # it fails closed, as one under an unknown key (the kill switch starts halted).
    later = KeyRing(LATER, (OLD, NEW))
    StateFile(path, derive_state_key(OLD)).save(PersistedState(state=KillSwitchState.ARMED, epoch=9))
    forged = StateFile(path, *chain_state_keys(audit_settings, data_dir, later)).read()
    assert forged.state is None and "does not verify" in forged.problem
    StateFile(path, derive_state_key(NEW)).save(PersistedState(state=KillSwitchState.ARMED, epoch=9))
    assert StateFile(path, *chain_state_keys(audit_settings, data_dir, later)).read().retired_key


def test_start_up_refuses_a_head_under_a_key_a_rotation_left(audit_settings, data_dir, raw_sql) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _append(log, 2)
        at = log.rotate(NEW, "reload").sequence
    finally:
        log.close()
    _insert(raw_sql, _row(at + 1), _rows(audit_settings, data_dir)[-1][9], OLD)  # a head forged under OLD
    with pytest.raises(AuditStoreError, match=f"which the KEY_ROTATION entry {at} already left"):
        _open(audit_settings, data_dir, RING)
    assert len(_rows(audit_settings, data_dir)) == at + 1  # nothing written after it


def test_start_up_refuses_a_forged_rotation_at_the_head(audit_settings, data_dir, raw_sql) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _append(log, 2)
    finally:
        log.close()
    # Under the epoch's key OLD, but naming LATER as the old key: verify calls it forged; so does the writer.
    forged = _rotation_json(LATER, NEW)
    _insert(raw_sql, _row(3, "KEY_ROTATION", forged), _rows(audit_settings, data_dir)[-1][9], OLD)
    with pytest.raises(AuditStoreError, match="a forged rotation"):
        _open(audit_settings, data_dir, KeyRing(NEW, (OLD, LATER)))


def test_no_rotation_back_to_a_retired_key(audit_settings, data_dir, raw_sql) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _append(log, 1)
        rotation = log.rotate(NEW, "reload")
        with pytest.raises(ValueError, match="already used"):
            log.rotate(OLD, "reload")
        _append(log, 1)
    finally:
        log.close()
    # One written anyway (by hand, under the epoch's key): verify calls it broken.
    back = _rotation_json(NEW, OLD)
    head = _rows(audit_settings, data_dir)[-1]
    _insert(raw_sql, _row(head[1] + 1, "KEY_ROTATION", back), head[9], NEW)
    result = _verify_with(audit_settings, data_dir, KeyRing(OLD, (NEW,)))
    assert not result.ok and result.broken_sequence == head[1] + 1 and "rotates back" in result.reason
    assert rotation.sequence == 2


def test_the_epochs_are_read_again_after_a_rotation(audit_settings, data_dir) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _append(log, 1)
        store = open_store(audit_settings, data_dir, create=False)
        try:
            assert read_epochs(store, RING) == EpochMap(keys=(OLD,))
            log.rotate(NEW, "reload")
            assert read_epochs(store, RING).keys == (OLD, NEW)
        finally:
            store.close()
    finally:
        log.close()


@pytest.mark.ministack
def test_the_anchorer_never_anchors_old_key_entries_after_a_rotation(audit_settings, anchor_settings, data_dir,
                                                                     raw_sql) -> None:
    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _append(log, 2)
        rotation = log.rotate(NEW, "reload")
    finally:
        log.close()
    store, client = open_store(audit_settings, data_dir, create=False), s3_client(anchor_settings)
    try:
        anchorer = Anchorer(anchor_settings, store, RING, client)
        assert anchorer.anchor_now().sequence == rotation.sequence  # the last anchor: the rotation itself
        # The next segment starts after it, all under the retired key: it verifies on its own, but
        # not in its epoch.
        prev = _insert(raw_sql, _row(rotation.sequence + 1), rotation.hash, OLD)
        _insert(raw_sql, _row(rotation.sequence + 2), prev, OLD)
        with pytest.raises(AnchorError, match=f"refusing to anchor a broken chain: entry {rotation.sequence + 1}"):
            anchorer.anchor_now()
    finally:
        store.close()
    assert list_anchors(client, anchor_settings)[-1].sequence == rotation.sequence


@pytest.mark.ministack
def test_a_live_rotation_is_anchored_at_once(runtime, anchor_settings, data_dir, audit_key) -> None:
    settings = AuditSettings(anchor=dataclasses.replace(anchor_settings, interval_s=3600.0))  # never on its own
    Audit.start(HaltBoard(), settings, data_dir, "production", data_dir / "KILL")
    audit = runtime.whereis(AUDIT_NAME)
    rotation = audit.ask(RotateKey(keys=RING, reason="reload"), timeout=10).result(timeout=10)
    client = s3_client(anchor_settings)
    wait_until(lambda: any(a.sequence >= rotation.sequence for a in list_anchors(client, anchor_settings)), 10,
               "the rotation's anchor")


def test_a_rollback_past_a_rotation_the_state_file_recorded_starts_halted(audit_settings, data_dir, raw_sql,
                                                                          tmp_path) -> None:
    from xorj_actors.kill_switch import decide

    log = _open(audit_settings, data_dir, KeyRing(OLD))
    try:
        _halt(log, "ARMED", 1)
        rotation = log.rotate(NEW, "reload")
        _halt(log, "TRIGGERED", 2)
    finally:
        log.close()
    path = tmp_path / "kill_switch.json"
    recorded = (rotation.sequence, fingerprint(NEW))
    state_file = StateFile(path, *chain_state_keys(audit_settings, data_dir, RING))
    state_file.save(PersistedState(state=KillSwitchState.TRIGGERED, epoch=2, audit_rotation=recorded))
    history = _read(audit_settings, data_dir, lambda s: read_halt_history(s, RING))
    assert history.key_rotations == (recorded,) and decide(state_file.read(), history).halt is None
    # The holder of the retired key cuts the log back to OLD's epoch and forges an ARMED head there.
    raw_sql("DELETE FROM {t} WHERE sequence >= ?", rotation.sequence)
    head = _rows(audit_settings, data_dir)[-1]
    _insert(raw_sql, (*_row(head[1] + 1, "HALT", _armed(2))[:5], "kill_switch", None, _armed(2)), head[9], OLD)
    history = _read(audit_settings, data_dir, lambda s: read_halt_history(s, RING))
    assert history.last.state is KillSwitchState.ARMED and history.problem is None  # the log alone cannot tell
    reading = StateFile(path, *chain_state_keys(audit_settings, data_dir, RING)).read()
    decision = decide(reading, history)
    assert decision.halt is not None and "rolled back past a key rotation" in decision.halt
    assert decision.state.state is KillSwitchState.TRIGGERED


def test_the_state_file_carries_the_rotation_it_saw() -> None:
    from xorj_actors.kill_switch import FileReading, HaltHistory, Transition, decide

    armed = Transition(KillSwitchState.ARMED, 1, 1.0)
    old_file = FileReading(present=True, state=PersistedState(state=KillSwitchState.ARMED, epoch=1))
    assert "audit_rotation" not in old_file.state.to_dict()  # a file from before rotations stays as it was
    history = HaltHistory(has_history=True, last=armed, max_epoch=1, key_rotations=((4, "ab" * 12),))
    started = decide(old_file, history)
    assert started.halt is None and started.state.audit_rotation == (4, "ab" * 12)  # recorded from now on
    again = PersistedState.from_dict(started.state.to_dict())
    assert again.audit_rotation == (4, "ab" * 12)
    with pytest.raises(ValueError, match="audit_rotation"):
        PersistedState.from_dict({**started.state.to_dict(), "audit_rotation": [True, "x"]})
