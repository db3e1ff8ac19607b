"""Verification finds the first tampered entry and says how; the CLI reads, filters and exports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from xorj_actors.audit import (
    AuditLog,
    AuditSettings,
    chain_hash,
    chain_hmac,
    entry_bytes,
    open_store,
    verify_store,
)
from xorj_actors.audit import cli as audit_cli

ENTRIES = 10


def fill(settings: AuditSettings, data_dir: Path, n: int = ENTRIES) -> list:
    log = AuditLog.open(settings, data_dir, "production")
    try:
        return [
            log.append(
                "TRADE_INTENT" if i % 2 else "SYSTEM_EVENT",
                actor=f"vault-{i % 3}",
                correlation_id=f"trade-{i % 4}",
                details={"i": i},
            )
            for i in range(1, n + 1)
        ]
    finally:
        log.close()


def verify(settings: AuditSettings, data_dir: Path, key: bytes):
    store = open_store(settings, data_dir, create=False)
    try:
        return verify_store(store, key)
    finally:
        store.close()


def renumber(raw_sql, from_seq: int, delta: int) -> None:
    """Shift sequence numbers >= from_seq by delta (through negatives: the key is unique)."""
    raw_sql("UPDATE {t} SET sequence = -(sequence + ?) WHERE sequence >= ?", delta, from_seq)
    raw_sql("UPDATE {t} SET sequence = -sequence WHERE sequence < 0")


def forged_row(raw_sql, seq: int, prev_hash: str) -> None:
    """A row with a correct-looking chain hash (the algorithm is public) but no audit key."""
    row = ("00000000-0000-7000-8000-000000000000", seq, "2026-01-01T00:00:00.000000Z", "TRADE_EXECUTION",
           "INFO", "intruder", "trade-x", '{"stolen":true}')
    h = chain_hash(prev_hash, entry_bytes(*row))
    raw_sql("INSERT INTO {t} (id, sequence, timestamp, event_type, severity, actor, correlation_id, details,"
            " prev_hash, hash, hmac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", *row, prev_hash, h, "ab" * 32)


def tamper_edit(raw_sql, entries):
    raw_sql("""UPDATE {t} SET details = '{"i":500}' WHERE sequence = 5""")


def tamper_delete(raw_sql, entries):
    raw_sql("DELETE FROM {t} WHERE sequence = 5")


def tamper_delete_renumber(raw_sql, entries):
    raw_sql("DELETE FROM {t} WHERE sequence = 5")
    renumber(raw_sql, 6, -1)


def tamper_swap(raw_sql, entries):
    raw_sql("UPDATE {t} SET sequence = -5 WHERE sequence = 5")
    raw_sql("UPDATE {t} SET sequence = 5 WHERE sequence = 6")
    raw_sql("UPDATE {t} SET sequence = 6 WHERE sequence = -5")


def tamper_insert(raw_sql, entries):
    renumber(raw_sql, 5, 1)
    forged_row(raw_sql, 5, entries[3].hash)


def swap(raw_sql, a: int, b: int) -> None:
    """Exchange the rows at sequences ``a`` and ``b`` (contents, hashes and all)."""
    raw_sql("UPDATE {t} SET sequence = -1 WHERE sequence = ?", a)
    raw_sql("UPDATE {t} SET sequence = ? WHERE sequence = ?", a, b)
    raw_sql("UPDATE {t} SET sequence = ? WHERE sequence = -1", b)


def tamper_hmac(raw_sql, entries):
    raw_sql("UPDATE {t} SET hmac = ? WHERE sequence = 5", "cd" * 32)


def tamper_rehash(raw_sql, entries):
    """Edit and recompute the hash (possible without the key): only the HMAC gives it away."""
    e = entries[4]
    details = '{"i":5000}'
    h = chain_hash(e.prev_hash, entry_bytes(e.id, 5, e.timestamp, e.event_type, e.severity, e.actor,
                                            e.correlation_id, details))
    raw_sql("UPDATE {t} SET details = ?, hash = ? WHERE sequence = 5", details, h)


@pytest.mark.parametrize(
    ("tamper", "broken", "reason"),
    [
        (tamper_edit, 5, "edited row: entry 5"),
        (tamper_delete, 5, "deleted row: entries 5..5 are missing"),
        (tamper_delete_renumber, 5, "deleted row: entry 5 holds the original entry 6"),
        (tamper_swap, 5, "rows swapped: entries 5 and 6"),
        (tamper_insert, 5, "inserted row: entry 5 is not part of the chain"),
        (tamper_hmac, 5, "forged HMAC: entry 5"),
        (tamper_rehash, 5, "forged HMAC: entry 5"),
    ],
)
def test_verify_names_the_first_broken_entry(audit_settings, data_dir, audit_key, raw_sql, tamper, broken, reason):
    entries = fill(audit_settings, data_dir)
    assert verify(audit_settings, data_dir, audit_key).ok
    tamper(raw_sql, entries)
    result = verify(audit_settings, data_dir, audit_key)
    assert not result.ok
    assert result.broken_sequence == broken
    assert reason in result.reason
    assert result.entries == broken - 1  # every entry before it verified


def tamper_rotate(raw_sql, entries):
    """5 -> 7, 6 -> 5, 7 -> 6: reordered, but no two rows simply exchanged."""
    raw_sql("UPDATE {t} SET sequence = -5 WHERE sequence = 5")
    raw_sql("UPDATE {t} SET sequence = 5 WHERE sequence = 6")
    raw_sql("UPDATE {t} SET sequence = 6 WHERE sequence = 7")
    raw_sql("UPDATE {t} SET sequence = 7 WHERE sequence = -5")


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        (5, 15, "rows swapped: entries 5 and 15 were exchanged"),  # was "edited row: entry 5"
        (1, 20, "rows swapped: entries 1 and 20 were exchanged"),  # the first and the head
        (3, 18, "rows swapped: entries 3 and 18 were exchanged"),
        (9, 10, "rows swapped: entries 9 and 10 were exchanged"),
    ],
)
def test_swapped_rows_far_apart_are_named_as_swapped(audit_settings, data_dir, audit_key, raw_sql, a, b, reason):
    """The rows still carry the hashes of their old places: the whole table says where each came from."""
    fill(audit_settings, data_dir, 20)
    swap(raw_sql, a, b)
    result = verify(audit_settings, data_dir, audit_key)
    assert (result.ok, result.broken_sequence) == (False, a)
    assert reason in result.reason


def test_a_rotation_is_named_as_reordered_not_as_a_deletion(audit_settings, data_dir, audit_key, raw_sql):
    fill(audit_settings, data_dir, 20)
    tamper_rotate(raw_sql, [])
    result = verify(audit_settings, data_dir, audit_key)
    assert result.broken_sequence == 5
    assert "rows reordered: entry 5 holds the original entry 6; the original entry 5 is now entry 7" in result.reason


def test_verify_with_the_wrong_key_fails_at_the_first_entry(data_dir, audit_key):
    fill(AuditSettings(), data_dir, 3)
    result = verify(AuditSettings(), data_dir, b"x" * 32)
    assert not result.ok and result.broken_sequence == 1 and "HMAC" in result.reason


def write_config(settings: AuditSettings, path: Path) -> Path:
    """A TOML config selecting ``settings``' backend (the fields the tests change)."""
    # No trading: a production config that trades must name its mints (tests/ops/test_check_cli.py).
    lines = ["[engine]", 'environment = "production"', "[execution]", "enabled = false",
             "[audit]", f'backend = "{settings.backend}"']
    if settings.backend == "postgres":
        pg = settings.postgres
        lines += ["[audit.postgres]", f'host = "{pg.host}"', f"port = {pg.port}", f'database = "{pg.database}"',
                  f'user = "{pg.user}"', f'schema = "{pg.schema}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="xorj-actors audit")
    audit_cli.add_arguments(parser)
    return audit_cli.main(parser.parse_args(argv))


def test_cli_verify_exit_codes(audit_settings, data_dir, audit_key, raw_sql, tmp_path, capsys):
    fill(audit_settings, data_dir)
    common = ["--config", str(write_config(audit_settings, tmp_path / "c.toml")), "--data-dir", str(data_dir)]
    assert run_cli(["verify", *common]) == audit_cli.EXIT_UNANCHORED == 3  # intact, but nothing anchored
    out = capsys.readouterr().out
    assert out.startswith(f"UNANCHORED: {ENTRIES} entries") and "anchoring is disabled" in out
    tamper_swap(raw_sql, [])
    assert run_cli(["verify", *common]) == audit_cli.EXIT_BROKEN == 1
    assert "BROKEN at entry 5: rows swapped" in capsys.readouterr().err


def rewrite_with_key(raw_sql, key: bytes, entries: list) -> None:
    """Replace the whole table by ``entries`` (in this order), re-chained and re-HMACed with the real key."""
    raw_sql("DELETE FROM {t}")
    prev = "0" * 64
    for seq, e in enumerate(entries, 1):
        h = chain_hash(prev, entry_bytes(e.id, seq, e.timestamp, e.event_type, e.severity, e.actor,
                                         e.correlation_id, e.details))
        raw_sql("INSERT INTO {t} (id, sequence, timestamp, event_type, severity, actor, correlation_id, details,"
                " prev_hash, hash, hmac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                e.id, seq, e.timestamp, e.event_type, e.severity, e.actor, e.correlation_id, e.details, prev, h,
                chain_hmac(key, h))
        prev = h


@pytest.mark.parametrize("tamper", ["delete the last 3 rows", "delete every row", "rewrite with the key"])
def test_without_anchors_verify_says_truncation_and_rewrites_cannot_be_detected(
    audit_settings, data_dir, audit_key, raw_sql, tmp_path, capsys, tamper
):
    """The default config has no anchors: a cut tail or a consistent rewrite is not "OK" (exit 0)."""
    entries = fill(audit_settings, data_dir)
    if tamper == "delete the last 3 rows":
        raw_sql("DELETE FROM {t} WHERE sequence > ?", ENTRIES - 3)
    elif tamper == "delete every row":
        raw_sql("DELETE FROM {t}")
    else:
        rewrite_with_key(raw_sql, audit_key, [entries[0], entries[2], entries[1], *entries[3:]])
    common = ["--config", str(write_config(audit_settings, tmp_path / "c.toml")), "--data-dir", str(data_dir)]
    assert run_cli(["verify", *common]) == 3
    out = capsys.readouterr().out
    assert not out.startswith("OK")
    assert "no anchor covers the log (anchoring is disabled: [audit.anchor] enabled = false)" in out
    assert "a truncated tail or a rewrite with the audit key cannot be detected" in out
    assert run_cli(["verify", "--no-anchors", *common]) == 3
    assert "--no-anchors: the anchors were not consulted" in capsys.readouterr().out


def test_cli_filters_and_exports_json_lines(audit_settings, data_dir, audit_key, tmp_path, capsys):
    entries = fill(audit_settings, data_dir)
    common = ["--config", str(write_config(audit_settings, tmp_path / "c.toml")), "--data-dir", str(data_dir)]
    out = tmp_path / "export.jsonl"
    assert run_cli(["export", *common, "--trade-id", "trade-1", "--type", "TRADE_INTENT", "-o", str(out)]) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [e for e in entries if e.correlation_id == "trade-1" and e.event_type == "TRADE_INTENT"]
    assert [d["sequence"] for d in exported] == [e.sequence for e in expected] and expected
    assert exported[0] == expected[0].to_dict()

    assert run_cli(["tail", *common, "-n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [int(line.split()[0]) for line in lines] == [8, 9, 10]

    assert run_cli(["show", *common, "--sequence", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == entries[3].id

    ts = entries[0].timestamp
    assert run_cli(["export", *common, "--until", ts]) == 0
    assert capsys.readouterr().out == ""  # --until is exclusive and the first entry is the oldest
    assert run_cli(["export", *common, "--since", ts, "--type", "SYSTEM_EVENT"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == ENTRIES // 2


def test_cli_bad_input_is_a_clear_error(data_dir, audit_key, tmp_path, capsys):
    fill(AuditSettings(), data_dir, 1)
    common = ["--data-dir", str(data_dir)]
    assert run_cli(["export", *common, "--type", "NOPE"]) == 2
    assert "unknown event type 'NOPE'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli(["tail", *common, "--since", "yesterday"])
    assert "not an ISO 8601 time" in capsys.readouterr().err
    assert run_cli(["verify", "--data-dir", str(tmp_path / "empty")]) == 2
    assert "no audit database" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[audit]\nbackend = "mysql"\n')
    assert run_cli(["verify", "--config", str(bad), *common]) == 2
    assert "audit.backend" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (None, None),
        (tamper_swap, "rows swapped: entries 5 and 6"),  # across the boundary of the two ranges
        (tamper_delete_renumber, "deleted row: entry 5 holds the original entry 6"),
        (tamper_rehash, "forged HMAC: entry 5"),
    ],
)
def test_parallel_verify_agrees_with_the_serial_pass(data_dir, audit_key, monkeypatch, tamper, reason):
    from xorj_actors.audit import _verify

    settings = AuditSettings()
    entries = fill(settings, data_dir)
    if tamper is not None:
        import sqlite3

        conn = sqlite3.connect(data_dir / "audit.db", isolation_level=None)

        def raw(sql, *params):
            return conn.execute(sql.replace("{t}", "audit_entries"), params).fetchall()

        tamper(raw, entries)
        conn.close()
    monkeypatch.setattr(_verify, "PARALLEL_MIN_ENTRIES", 1)
    monkeypatch.setattr(_verify, "_SPAWN_FACTOR", 1)  # a thread left by another test means spawn
    calls = []
    real = _verify._verify_parallel
    monkeypatch.setattr(_verify, "_verify_parallel", lambda *a: calls.append(a[5]) or real(*a))
    store = open_store(settings, data_dir, create=False)
    try:
        result = verify_store(store, audit_key, workers=2)
    finally:
        store.close()
    assert len(calls) == 1  # the two-process path ran (forked, unless pytest runs another thread)
    assert result.ok is (tamper is None)
    assert result.reason is None if tamper is None else reason in result.reason
    if tamper is None:
        assert (result.entries, result.head_hash) == (ENTRIES, entries[-1].hash)


def test_parallel_verify_forks_only_a_single_threaded_process():
    """A fork copies no lock another thread holds: with any other thread running, workers are spawned."""
    import threading

    from xorj_actors.audit import _verify

    assert threading.active_count() > 1 or _verify._start_method() == "fork"
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _verify._start_method() == "spawn"
    finally:
        stop.set()
        other.join()
