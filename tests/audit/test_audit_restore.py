"""``audit restore --from-anchors``: an empty store rebuilt from S3 Object Lock (ministack), both backends."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.audit.test_audit_anchor import _anchored_config
from tests.audit.test_audit_verify import fill, run_cli
from tests.plugins.audit import lose_database
from xorj_actors.audit import AuditSettings, open_store, select_entries
from xorj_actors.kill_switch import (
    FileReading,
    HaltMarker,
    KillSwitchState,
    PersistedState,
    StateFile,
    decide,
    derive_state_key,
)

pytestmark = pytest.mark.ministack


def rows(settings: AuditSettings, data_dir: Path, chain: str = "default") -> list[tuple]:
    store = open_store(dataclasses.replace(settings, chain=chain), data_dir, create=False)
    try:
        return [e.row() for e in select_entries(store)]
    finally:
        store.close()


def test_restore_rebuilds_a_lost_store_verifies_it_and_states_the_gap(
    audit_settings, anchor_settings, data_dir, audit_key, tmp_path, capsys
):
    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    entries = fill(audit_settings, data_dir)
    assert run_cli(["anchor", *common]) == 0
    entries += fill(audit_settings, data_dir, 5)
    assert run_cli(["anchor", *common]) == 0
    fill(audit_settings, data_dir, 3)  # written after the last anchor: lost with the database
    lose_database(audit_settings, data_dir)
    capsys.readouterr()

    assert run_cli(["restore", "--from-anchors", *common]) == 0
    out = capsys.readouterr().out
    assert "chain default: restored 15 entries from 2 anchors" in out
    assert "verify: OK: 15 entries" in out and "2 anchors matched" in out
    assert "known: the restored log ends at entry 15" in out
    assert "unknown: entries the lost database held after entry 15" in out and "cannot be known" in out
    assert "no kill-switch state file" in out  # nothing local survived to tell more
    # The marker is this host's: a shared PostgreSQL store is said to need every other engine halted.
    assert ("WARNING: the store is PostgreSQL" in out) == (audit_settings.backend == "postgres")
    assert "other nodes' logs" not in out  # only this data directory's own chain was restored
    assert rows(audit_settings, data_dir) == [e.row() for e in entries]
    assert run_cli(["verify", *common]) == 0  # the same verify, independently
    # The engine's next start is halted, whatever else it finds.
    marker = HaltMarker(data_dir / "kill_switch.json.halt")
    held = marker.open()
    marker.close()
    assert held is not None and "audit store restored from the anchors" in held and "default at entry 15" in held
    decision = decide(FileReading(present=False), None, pending_halt=held)
    assert decision.state.state is KillSwitchState.TRIGGERED


def test_restore_refuses_a_store_that_is_not_empty_and_changes_nothing(
    audit_settings, anchor_settings, data_dir, audit_key, tmp_path, capsys
):
    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    fill(audit_settings, data_dir)
    assert run_cli(["anchor", *common]) == 0
    before = rows(audit_settings, data_dir)
    capsys.readouterr()
    assert run_cli(["restore", "--from-anchors", "--json", *common]) == 2
    captured = capsys.readouterr()
    assert "the audit store is not empty (chain default holds 10 entries)" in captured.err
    assert "audit recover" in captured.err
    assert json.loads(captured.out)["ok"] is False
    assert rows(audit_settings, data_dir) == before
    assert not (data_dir / "kill_switch.json.halt").exists()


def test_restore_without_anchors_is_refused(audit_settings, anchor_settings, data_dir, audit_key, tmp_path, capsys):
    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    assert run_cli(["restore", "--from-anchors", "--config", str(config), "--data-dir", str(data_dir)]) == 2
    assert "no anchor in s3://" in capsys.readouterr().err
    assert not (data_dir / audit_settings.sqlite_path).exists() or audit_settings.backend != "sqlite"


def test_restore_json_every_chain_and_a_surviving_state_file_proves_a_loss(
    audit_settings, anchor_settings, data_dir, audit_key, tmp_path, capsys
):
    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    other = dataclasses.replace(audit_settings, chain="node-b")
    fill(audit_settings, data_dir, 4)
    mine = fill(other, data_dir, 6)
    assert run_cli(["anchor", *common]) == 0
    assert run_cli(["anchor", "--chain", "node-b", *common]) == 0
    # The engine recorded a recovery (ARMED epoch 2) after the last anchor; its state file survived.
    StateFile(data_dir / "kill_switch.json", derive_state_key(audit_key)).save(
        PersistedState(state=KillSwitchState.ARMED, epoch=2)
    )
    lose_database(audit_settings, data_dir)
    capsys.readouterr()
    assert run_cli(["restore", "--from-anchors", "--json", *common]) == 0
    report = json.loads(capsys.readouterr().out)
    by_chain = {c["chain"]: c for c in report["chains"]}
    assert set(by_chain) == {"default", "node-b"} and report["ok"] is True
    assert (by_chain["default"]["restored"], by_chain["node-b"]["restored"]) == (4, 6)
    assert all(c["verdict"] == "OK" for c in by_chain.values())
    gap = by_chain["default"]["gap"]
    assert gap["lost_after_sequence"] == 4 and gap["lost_entries"] is None
    assert gap["proven_loss"] is True and "ARMED epoch 2" in gap["local_evidence"]
    assert by_chain["node-b"]["gap"]["local_evidence"] is None  # the state file is the default chain's engine's
    assert report["halt_marker"] == str(data_dir / "kill_switch.json.halt")
    # node-b's log came back too, but the marker halts this data directory's engine only: said loudly.
    assert any("chains node-b were restored too" in w and "KILL_SWITCH_ACTIVE=true" in w for w in report["warnings"])
    assert len(report["warnings"]) == (2 if audit_settings.backend == "postgres" else 1)
    assert rows(audit_settings, data_dir, "node-b") == [e.row() for e in mine]


def test_restore_on_a_terminal_draws_a_bar_per_chain_and_step(
    audit_settings, anchor_settings, data_dir, audit_key, tmp_path, capsys, monkeypatch
):
    from tests.terminal import frames, stderr_on_a_terminal

    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    fill(audit_settings, data_dir, 7)
    assert run_cli(["anchor", *common]) == 0
    lose_database(audit_settings, data_dir)
    with stderr_on_a_terminal(monkeypatch) as drawn:
        assert run_cli(["restore", "--from-anchors", *common]) == 0
    assert "audit restore default" in drawn[0] and "audit verify default" in drawn[0]
    assert (7, 7) in {(done, total) for done, total, _ in frames(drawn[0])}
    assert "restored 7 entries" in capsys.readouterr().out  # stdout: the report alone


@pytest.mark.parametrize(("state", "epoch", "proven", "says"), [
    (KillSwitchState.ARMED, 0, False, "matches the restored log"),  # what the log holds: nothing lost there
    (KillSwitchState.ARMED, 3, True, "held at least that transition"),  # a resume: in the log before the file
    (KillSwitchState.TRIGGERED, 3, False, "probably held that halt"),  # a halt: the file is written first
])
def test_a_surviving_state_file_is_read_for_what_it_proves(
    audit_settings, anchor_settings, data_dir, audit_key, tmp_path, capsys, state, epoch, proven, says
):
    from xorj_actors.audit import AuditLog

    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    log = AuditLog.open(audit_settings, data_dir, "production")
    try:  # the kill switch's first start, as it records it
        log.append("SYSTEM_EVENT", actor="kill_switch", details={"what": "first start",
                                                                 "transition": {"state": "ARMED", "epoch": 0, "factor": 1.0}})
    finally:
        log.close()
    fill(audit_settings, data_dir, 3)
    assert run_cli(["anchor", *common]) == 0
    StateFile(data_dir / "kill_switch.json", derive_state_key(audit_key)).save(PersistedState(state=state, epoch=epoch))
    lose_database(audit_settings, data_dir)
    capsys.readouterr()
    assert run_cli(["restore", "--from-anchors", "--json", *common]) == 0
    gap = json.loads(capsys.readouterr().out)["chains"][0]["gap"]
    assert gap["proven_loss"] is proven and says in gap["local_evidence"], gap


def test_a_restore_that_stops_partway_leaves_the_engine_halted_and_says_what_it_wrote(
    audit_settings, anchor_settings, data_dir, audit_key, tmp_path, capsys
):
    from xorj_actors.audit import list_anchors, s3_client

    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    first = fill(audit_settings, data_dir)
    assert run_cli(["anchor", *common]) == 0
    fill(audit_settings, data_dir, 5)
    assert run_cli(["anchor", *common]) == 0
    lose_database(audit_settings, data_dir)
    # The later segment's object, rewritten (a new version: Object Lock keeps the old one, S3 serves
    # the new): one entry's actor changed, so it no longer continues the chain.
    client = s3_client(anchor_settings)
    later = list_anchors(client, anchor_settings)[-1].source
    body = client.get_object(Bucket=anchor_settings.bucket, Key=later)["Body"].read().decode()
    head, *lines = body.splitlines()
    entry = json.loads(lines[2])
    entry["actor"] = "someone-else"
    lines[2] = json.dumps(entry)
    client.put_object(Bucket=anchor_settings.bucket, Key=later, Body="\n".join([head, *lines]).encode())
    capsys.readouterr()

    assert run_cli(["restore", "--from-anchors", "--json", *common]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is False
    err = captured.err
    assert "the restore stopped partway" in err and "does not continue the log" in err
    assert "10 entries were written (chain default: 10)" in err and "changed nothing" not in err
    assert "audit recover --chain NAME" in err and "halt marker" in err and "is set" in err
    assert rows(audit_settings, data_dir) == [e.row() for e in first]  # the first segment, written
    # Set before the first write: the engine's next start is halted.
    marker = HaltMarker(data_dir / "kill_switch.json.halt")
    held = marker.open()
    marker.close()
    assert held is not None and "restore from the anchors begun" in held
    assert decide(FileReading(present=False), None, pending_halt=held).state.state is KillSwitchState.TRIGGERED
