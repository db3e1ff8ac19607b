"""The engine records its halts in the audit trail and halts when the trail cannot be written."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from xorj_actors.audit import AUDIT_NAME, GetAuditHealth
from xorj_actors.kill_switch import KILL_SWITCH_NAME
from xorj_actors.messages import HaltMode, Trigger
from tests.plugins.engine import ks_status, wait_until


def audit_rows(engine) -> list[tuple[int, str, str]]:
    db = sqlite3.connect(engine.data_dir / "audit.db")
    try:
        return db.execute("SELECT sequence, event_type, details FROM audit_entries ORDER BY sequence").fetchall()
    finally:
        db.close()


def test_halts_are_recorded_in_a_verifiable_chain(engine) -> None:
    engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.GRACEFUL, reason="drill", source="test"))
    wait_until(lambda: ks_status(engine).complete)
    wait_until(lambda: any("halt complete" in d for _, t, d in audit_rows(engine)), what="halt recorded")
    kinds = [t for _, t, _ in audit_rows(engine)]
    # The kill switch's start entry comes before its halt; the strategy feed's error (nothing
    # listens at its URL here) may land anywhere, even first.
    assert "SYSTEM_EVENT" in kinds and "HALT" in kinds and kinds.index("SYSTEM_EVENT") < kinds.index("HALT"), kinds
    out = subprocess.run(
        [sys.executable, "-m", "xorj_actors.cli", "audit", "verify", "--data-dir", str(engine.data_dir)],
        capture_output=True, text=True, timeout=60,
    )
    # 3: chain and HMACs intact, not anchored (anchoring is off here; 0 needs every entry anchored).
    assert out.returncode == 3 and out.stdout.startswith("UNANCHORED: "), out.stdout + out.stderr


def test_an_unwritable_audit_store_halts_trading_and_loses_nothing(engine) -> None:
    assert ks_status(engine).state == "ARMED"
    before = len(audit_rows(engine))
    locker = sqlite3.connect(engine.data_dir / "audit.db", timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holding the database: a real outage
    try:
        engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.GRACEFUL, reason="during outage", source="test"))
        wait_until(lambda: ks_status(engine).source == "audit", 15, "audit outage halts trading")
        status = ks_status(engine)
        assert status.state == "TRIGGERED" and "audit store unavailable" in status.reason
        health = engine.runtime.whereis(AUDIT_NAME).ask(GetAuditHealth(), timeout=5)
        assert not health.available and health.pending > 0
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    wait_until(lambda: engine.runtime.whereis(AUDIT_NAME).ask(GetAuditHealth(), timeout=5).pending == 0, 15, "backlog written")
    details = [d for _, _, d in audit_rows(engine)[before:]]
    assert any("during outage" in d for d in details), "the event from the outage was written, not lost"
    seqs = [s for s, _, _ in audit_rows(engine)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_missing_audit_key_in_production_halts_without_a_crash_loop(engine_factory, monkeypatch) -> None:
    from tests.plugins.engine import RECOVERY_KEYS

    monkeypatch.delenv("XORJ_AUDIT_HMAC_KEY", raising=False)
    env = {**RECOVERY_KEYS, "XORJ_QUANT_API_KEY": "quant-key-for-tests"}
    engine = engine_factory(environ=env, extra="[signers]\nkeys = []\n", environment="production")
    wait_until(lambda: ks_status(engine).state == "TRIGGERED", 10, "halt for the missing audit key")
    assert "audit" in ks_status(engine).reason
    health = engine.runtime.whereis(AUDIT_NAME).ask(GetAuditHealth(), timeout=5)
    assert not health.available and "XORJ_AUDIT_HMAC_KEY" in health.reason
    assert not engine.root.actor_inbox.closed, "the engine stays up, halted, and says why"
