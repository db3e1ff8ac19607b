"""One store, one hash chain per node: writers, verify, anchors and names (both backends)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.audit.test_audit_log import Availability, open_log
from tests.audit.test_audit_verify import run_cli, write_config
from xorj_actors.audit import (
    DEFAULT_CHAIN,
    GENESIS_HASH,
    Anchorer,
    AuditLog,
    AuditSettings,
    AuditStoreError,
    AuditTimeout,
    AuditUnavailable,
    chain_store,
    genesis_hash,
    list_anchors,
    list_chain_anchors,
    list_chains,
    open_store,
    recover_from_anchors,
    s3_client,
    verify_chains,
)
from xorj_actors.audit import cli as audit_cli
from xorj_actors.config import ConfigError, load_config

A, B = "node-a", "node-b"


def on_chain(settings: AuditSettings, chain: str) -> AuditSettings:
    return dataclasses.replace(settings, chain=chain)


def write_interleaved(settings: AuditSettings, data_dir: Path, per_writer: int = 40) -> None:
    """Two writers (two nodes' logs), each on its own chain, appending at the same time."""
    logs = [open_log(on_chain(settings, name), data_dir) for name in (A, B)]
    start = threading.Barrier(2)

    def write(log: AuditLog, name: str) -> None:
        start.wait()
        for i in range(per_writer):
            log.append("TRADE_INTENT", actor=name, correlation_id=f"{name}-trade-{i}", details={"i": i})

    threads = [threading.Thread(target=write, args=(log, name)) for log, name in zip(logs, (A, B))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for log in logs:
        log.close()


def verify_all(settings: AuditSettings, data_dir: Path, key: bytes, **kwargs: Any) -> dict:
    store = open_store(settings, data_dir, create=False, need_chain=False)
    try:
        return verify_chains(store, key, **kwargs)
    finally:
        store.close()


def test_two_chains_written_at_once_in_one_store_both_verify(audit_settings, data_dir, audit_key, chain_sql):
    write_interleaved(audit_settings, data_dir)
    results = verify_all(audit_settings, data_dir, audit_key)
    assert list(results) == [A, B]  # no default chain: neither writer wrote it
    assert all(r.ok and r.entries == 40 and r.head_sequence == 40 for r in results.values())
    for name in (A, B):  # each chain is gapless from 1, its own writer's entries only, from its own genesis
        rows = chain_sql(name, "SELECT sequence, actor, prev_hash FROM {t} ORDER BY sequence")
        assert [r[0] for r in rows] == list(range(1, 41))
        assert {r[1] for r in rows} == {name}
        assert rows[0][2] == genesis_hash(name) != GENESIS_HASH


def test_tampering_with_chain_b_is_reported_for_chain_b_only(
    audit_settings, data_dir, audit_key, chain_sql, tmp_path, capsys
):
    write_interleaved(audit_settings, data_dir)
    chain_sql(B, "UPDATE {t} SET details = ? WHERE sequence = 17", '{"i":999}')
    results = verify_all(audit_settings, data_dir, audit_key)
    assert results[A].ok and results[A].entries == 40
    assert not results[B].ok and results[B].broken_sequence == 17 and results[B].reason.startswith("edited row")

    config = write_config(audit_settings, tmp_path / "c.toml")
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    assert run_cli(["verify", *common]) == audit_cli.EXIT_BROKEN
    out, err = capsys.readouterr()
    assert out.startswith(f"chain {A}: UNANCHORED: 40 entries")
    assert err.startswith(f"chain {B}: BROKEN at entry 17: edited row")
    assert run_cli(["verify", "--chain", A, *common]) == audit_cli.EXIT_UNANCHORED  # A alone is intact
    assert capsys.readouterr().out.startswith(f"chain {A}: UNANCHORED")
    assert run_cli(["chains", *common]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in listed] == [[A, f"audit_entries_{A}"], [B, f"audit_entries_{B}"]]
    assert all("40 entries" in line for line in listed)


def test_a_store_of_one_process_verifies_and_prints_as_before(audit_settings, data_dir, audit_key, tmp_path, capsys):
    """No chain configured: today's table, today's genesis, today's one line from `audit verify`."""
    log = open_log(audit_settings, data_dir)
    first = log.append("SYSTEM_EVENT", actor="engine")
    log.append("SYSTEM_EVENT", actor="engine")
    log.close()
    assert first.prev_hash == GENESIS_HASH
    store = open_store(audit_settings, data_dir, create=False)
    try:
        assert (store.chain, store.table, list_chains(store)) == (DEFAULT_CHAIN, "audit_entries", [DEFAULT_CHAIN])
        indexes = {r[0] for r in store.db.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index'" if audit_settings.backend == "sqlite" else
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s", [] if audit_settings.backend == "sqlite"
            else [audit_settings.postgres.schema]).fetchall()}
    finally:
        store.close()
    assert {"entry_id", "entry_correlation_id", "audit_entries_kill_switch"} <= indexes  # the old schema
    config = write_config(audit_settings, tmp_path / "c.toml")
    assert run_cli(["verify", "--config", str(config), "--data-dir", str(data_dir)]) == audit_cli.EXIT_UNANCHORED
    assert capsys.readouterr().out.startswith("UNANCHORED: 2 entries, head 2 ")  # no "chain" prefix


def test_rows_moved_into_another_chains_table_do_not_verify_there(audit_settings, data_dir, audit_key, chain_sql):
    """Each chain starts from its own genesis: a node's rows copied over another's are caught
    without the anchors, even though every hash and HMAC in them recomputes."""
    write_interleaved(audit_settings, data_dir, per_writer=5)
    chain_sql(B, "DELETE FROM {t}")
    cols = "id, sequence, timestamp, event_type, severity, actor, correlation_id, details, prev_hash, hash, hmac"
    for row in chain_sql(A, f"SELECT {cols} FROM {{t}} ORDER BY sequence"):
        chain_sql(B, f"INSERT INTO {{t}} ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", *row)
    results = verify_all(audit_settings, data_dir, audit_key)
    assert results[A].ok
    assert not results[B].ok and results[B].broken_sequence == 1
    assert results[B].reason.startswith("wrong chain: entry 1 does not start this chain")


def test_a_second_writer_on_one_chain_is_detected_and_other_chains_write_on(audit_settings, data_dir, audit_key):
    """Two processes started with one chain by mistake: the sequence of that chain's table refuses
    the fork, the first writer stops loudly (the kill switch); another node's chain is untouched."""
    avail = Availability()
    first = open_log(on_chain(audit_settings, A), data_dir, avail)
    other = open_log(on_chain(audit_settings, B), data_dir)
    first.append("SYSTEM_EVENT", actor="engine-a")
    second = open_log(on_chain(audit_settings, A), data_dir)
    try:
        second.append("SYSTEM_EVENT", actor="engine-a-again")
        with pytest.raises(AuditTimeout, match="another writer touched the log"):
            first.append("SYSTEM_EVENT", actor="engine-a", timeout=1.0)
        assert avail.down.is_set() and avail.events[0].startswith("down: IntegrityError")
        assert other.append("SYSTEM_EVENT", actor="engine-b").sequence == 1
    finally:
        second.close()
        other.close()
        with pytest.raises(AuditUnavailable, match="unwritten"):
            first.close(timeout=0.5)
    results = verify_all(audit_settings, data_dir, audit_key)
    assert results[A].ok and results[A].entries == 2 and results[B].ok  # not forked


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Node-A", "not a chain name"),  # SQLite's table names ignore case: A and a would be one chain
        ("node_a", "not a chain name"),  # "_" would let one chain's table be another's index
        ("a" * 33, "not a chain name"),  # PostgreSQL cuts long names: two chains would be one table
        ("-a", "not a chain name"),
        ('a"; DROP TABLE x; --', "not a chain name"),
        ("pkey", "reserved"),  # audit_entries_pkey is the default table's primary key
    ],
)
def test_a_bad_chain_name_is_refused_everywhere(name, problem, data_dir, audit_key, tmp_path, capsys):
    with pytest.raises(ValueError, match=f"chain: .*{problem}"):
        AuditSettings(chain=name).validate()
    with pytest.raises(ValueError, match=f"chain: the node id .*{problem}.*set \\[audit\\] chain"):
        AuditSettings().for_node(name)
    assert AuditSettings(chain="ok").for_node(name).chain == "ok"  # [audit] chain wins over the node id
    with pytest.raises(AuditStoreError, match=problem):
        open_store(AuditSettings(chain=name), data_dir)
    assert not (data_dir / "audit.db").exists()  # refused before anything was created
    config = tmp_path / "c.toml"
    config.write_text(f'[cluster]\nnode_id = "{name}"\n' if '"' not in name else "[audit]\nchain = 'a\"b'\n")
    if len(name) <= 64 and '"' not in name and not name.startswith("-"):  # a valid node id, not a chain
        with pytest.raises(ConfigError, match=f"audit.chain: the node id .*{problem}"):
            load_config(config)
    assert run_cli(["tail", f"--chain={name}", "--data-dir", str(data_dir)]) == audit_cli.EXIT_CANNOT
    assert f"--chain: {name!r}" in capsys.readouterr().err


def test_the_chain_comes_from_the_audit_section_then_the_node_id_then_default():
    assert AuditSettings().for_node(None).chain == DEFAULT_CHAIN
    assert AuditSettings().for_node("node-7").chain == "node-7"
    assert AuditSettings(chain="east-1").for_node("node-7").chain == "east-1"
    assert AuditSettings(chain=DEFAULT_CHAIN).for_node("node-7").chain == DEFAULT_CHAIN
    assert AuditSettings().chain_name == DEFAULT_CHAIN


def test_read_commands_take_a_chain(audit_settings, data_dir, audit_key, tmp_path, capsys):
    write_interleaved(audit_settings, data_dir, per_writer=3)
    common = ["--config", str(write_config(audit_settings, tmp_path / "c.toml")), "--data-dir", str(data_dir)]
    assert run_cli(["tail", "--chain", B, *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(f" {B} {B}-trade-" in line for line in lines)
    assert run_cli(["tail", *common]) == audit_cli.EXIT_CANNOT  # this process's chain (default) has no table
    assert "no audit table" in capsys.readouterr().err
    assert run_cli(["show", "--chain", "node-c", *common]) == audit_cli.EXIT_CANNOT
    assert "chain node-c" in capsys.readouterr().err


def test_each_chain_has_its_own_anchors_and_verify_checks_each(
    audit_settings, anchor_settings, data_dir, audit_key, chain_sql
):
    settings = dataclasses.replace(audit_settings, anchor=anchor_settings)
    client = s3_client(anchor_settings)
    log = open_log(settings, data_dir)  # a process that ran alone first: the default chain
    log.append("SYSTEM_EVENT", actor="engine")
    log.close()
    default_store = open_store(settings, data_dir)
    Anchorer(anchor_settings, default_store, audit_key, client).anchor_now()  # an anchor as today's
    write_interleaved(settings, data_dir, per_writer=4)
    for name in (A, B):
        Anchorer(anchor_settings, chain_store(default_store, name), audit_key, client).anchor_now()
    default_store.close()

    heads = list_chain_anchors(client, anchor_settings)
    assert {c: [a.sequence for a in found] for c, found in heads.items()} == {DEFAULT_CHAIN: [1], A: [4], B: [4]}
    assert heads[A][0].source.startswith(f"{anchor_settings.prefix}{A}/")
    assert list_anchors(client, anchor_settings) == heads[DEFAULT_CHAIN]  # today's listing: today's anchors only
    results = verify_all(settings, data_dir, audit_key, anchors=heads)
    assert [r.verdict.value for r in results.values()] == ["OK", "OK", "OK"]

    # A whole chain rewritten with the key is caught by that chain's anchors, and only there.
    chain_sql(B, "DELETE FROM {t} WHERE sequence > 2")
    results = verify_all(settings, data_dir, audit_key, anchors=heads)
    assert results[A].ok and results[DEFAULT_CHAIN].ok
    assert not results[B].ok and "truncated tail: the log ends at entry 2" in results[B].reason
    store = open_store(on_chain(settings, B), data_dir, create=False)
    try:  # B's own anchors restore B, from B's genesis
        assert recover_from_anchors(store, audit_key, client, anchor_settings) == 2
    finally:
        store.close()
    assert verify_all(settings, data_dir, audit_key, anchors=heads)[B].verdict.value == "OK"
    # A chain whose table was dropped is still known to the anchors.
    chain_sql(A, "DROP TABLE {t}")
    results = verify_all(settings, data_dir, audit_key, anchors=heads)
    assert not results[A].ok and results[A].reason.startswith(f"missing chain: chain {A} has no table")


def test_a_log_of_an_older_version_gets_the_new_indexes_when_the_writer_opens_it(audit_settings, data_dir, audit_key):
    """The partial indexes of ``alive`` entries and key rotations are built on an existing table
    (a one-off build, not cut by PostgreSQL's statement timeout): the start-up reads never scan it."""
    new = {"audit_entries_kill_switch_alive", "audit_entries_key_rotation"}
    log = open_log(audit_settings, data_dir)
    log.append("SYSTEM_EVENT", actor="engine")
    log.close()
    pg = audit_settings.backend != "sqlite"

    def indexes() -> set[str]:
        store = open_store(audit_settings, data_dir, create=False)
        try:
            return {r[0] for r in store.db.execute_sql(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s" if pg else
                "SELECT name FROM sqlite_master WHERE type = 'index'", [audit_settings.postgres.schema] if pg else []
            ).fetchall()}
        finally:
            store.close()

    assert new <= indexes()
    store = open_store(audit_settings, data_dir, create=False)
    try:  # as an older version left it
        for name in sorted(new):
            store.db.execute_sql(f'DROP INDEX "{audit_settings.postgres.schema}"."{name}"' if pg else f'DROP INDEX "{name}"')
    finally:
        store.close()
    assert not new & indexes()
    log = open_log(audit_settings, data_dir)
    log.append("SYSTEM_EVENT", actor="engine")
    log.close()
    assert new <= indexes()

