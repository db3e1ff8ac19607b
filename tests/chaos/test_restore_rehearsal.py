"""The restore rehearsal (docs/OPERATIONS.md, "Monthly: rehearse a restore"), end to end on ministack.

A real engine (``xorj-actors run``) trades on the localnet process with anchoring to S3 Object
Lock (ministack) and SIGKILLs itself at ``confirming`` (a trade confirmed on chain, its outcome
not recorded). Then, as an operator would, through the CLI only: ``audit anchor``, the database
lost (the SQLite files deleted; the PostgreSQL schema dropped), ``audit restore --from-anchors``,
``audit verify``. The engine restarted on the same data directory must come up ``TRIGGERED``
(the restore's halt marker), settle the trade the crash left open against the chain with the
bytes signed before the crash, and start no new trade: every intent has one outcome, nothing
landed twice, the balances are genesis plus the confirmed legs, and the log verifies ``OK``
against the anchors after its stop.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.crash_helpers import EngineProcess, LocalnetProcess, cli, poll, read_ledger, signature_statuses
from tests.chaos.test_crash_recovery import (
    ENGINE_FILE,
    LOCALNET_FILE,
    LONG_WINDOW,
    Setup,
    _check_balances,
    _check_every_intent_has_one_outcome,
    _check_landed_at_most_once,
    _check_left_open_settled,
    _crash,
)
from tests.plugins.audit import lose_database
from xorj_actors.audit import AnchorSettings
from xorj_actors.config import load_config

pytestmark = pytest.mark.ministack


@pytest.fixture(params=["sqlite", "postgres"])
def rehearsal(request: pytest.FixtureRequest, tmp_path: Path, anchor_settings: AnchorSettings,
              audit_key: bytes) -> Iterator[Setup]:
    """A localnet process and an engine config anchoring to ministack, on each audit backend."""
    window = {"blockhash_valid_blocks": LONG_WINDOW}
    ln_config = tmp_path / "localnet.toml"
    ln_config.write_text(LOCALNET_FILE.format(**window))
    ln = LocalnetProcess(ln_config, tmp_path / "localnet.log")
    a = anchor_settings
    extra = ["[audit]", f'backend = "{request.param}"']
    if request.param == "postgres":
        schema = request.getfixturevalue("pg_schema")
        extra += ["[audit.postgres]", 'host = "127.0.0.1"', "port = 5432", 'database = "test"', 'user = "postgres"',
                  f'schema = "{schema}"', f'application_name = "{schema}"']
    extra += ["[audit.anchor]", "enabled = true", f'endpoint_url = "{a.endpoint_url}"', f'bucket = "{a.bucket}"',
              f'prefix = "{a.prefix}"', "interval_s = 1", "retention_days = 1", ""]
    config_path = tmp_path / "engine.toml"
    config_path.write_text(ENGINE_FILE.format(**ln.urls, **window, api="swap") + "\n".join(extra))
    try:
        yield Setup(ln, config_path, load_config(config_path), tmp_path / "var", tmp_path, "swap")
    finally:
        ln.stop()


def _audit(s: Setup, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli("audit", *args, "--config", str(s.config_path), "--data-dir", str(s.data)),
                          capture_output=True, text=True, timeout=120)


def test_restore_from_anchors_then_the_engine_starts_halted_and_settles_without_trading_twice(
    rehearsal: Setup,
) -> None:
    s = rehearsal
    # Trade, and crash with a trade confirmed on chain but not recorded.
    at_crash = _crash(s, "confirming")
    left_open = {t.trade_id: t for t in at_crash.open()}
    assert any(t.signed for t in left_open.values())
    # Anchor what the dead engine left (its anchorer ran every second; this is the last round).
    anchored = _audit(s, "anchor")
    assert anchored.returncode == 0, anchored.stdout + anchored.stderr
    before = _audit(s, "verify")
    assert before.returncode == 0 and before.stdout.startswith("OK: "), before.stdout + before.stderr
    entries = int(before.stdout.split()[1])

    lose_database(s.config.audit, s.data)
    gone = _audit(s, "verify")
    assert gone.returncode == 2, gone.stdout + gone.stderr  # no store any more

    restored = _audit(s, "restore", "--from-anchors", "--json")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    report = json.loads(restored.stdout)
    (chain,) = report["chains"]
    assert (chain["chain"], chain["restored"], chain["verdict"]) == ("default", entries, "OK")
    assert chain["gap"]["lost_after_sequence"] == entries and not chain["gap"]["proven_loss"]
    again = _audit(s, "restore", "--from-anchors")
    assert again.returncode == 2 and "not empty" in again.stderr  # a second restore changes nothing
    verified = _audit(s, "verify")
    assert verified.returncode == 0 and verified.stdout.startswith(f"OK: {entries} entries"), verified.stdout
    assert {t.trade_id for t in read_ledger(s.config, s.data).open()} == set(left_open)

    # The engine comes up halted and settles the open trade against the chain.
    engine = EngineProcess(s.config_path, s.data, s.tmp / "engine.log")
    try:
        ks = poll(lambda: (st := engine.status()) and st["kill_switch"], 30, "the engine's status", engine=engine)
        assert ks["state"] == "TRIGGERED" and ks["source"] == "start", ks
        assert "audit store restored from the anchors" in ks["reason"], ks["reason"]
        poll(lambda: not read_ledger(s.config, s.data).open(), 30, "the trades left open to be settled", engine=engine)
        assert engine.status()["kill_switch"]["state"] == "TRIGGERED"  # settling is no recovery
    except BaseException:
        engine.kill()
        raise
    assert engine.stop() == 0, engine.log_tail()
    final = read_ledger(s.config, s.data)

    assert {t.trade_id for t in final.intents()} == {t.trade_id for t in at_crash.intents()}, "a new trade while halted"
    assert len(final.reconciling) == 2 and final.reconciling[-1]["open_trades"] == len(left_open)
    _check_left_open_settled(left_open, final, signed_again=False)
    assert any(final.trades[t].outcome["status"] == "confirmed" for t in left_open)
    _check_every_intent_has_one_outcome(final)
    _check_landed_at_most_once(final, signature_statuses(s.rpc, final.signatures()))
    _check_balances(s, final)
    after = _audit(s, "verify")  # the engine anchored at its stop: every entry, restored or new
    assert after.returncode == 0 and after.stdout.startswith("OK: "), after.stdout + after.stderr
