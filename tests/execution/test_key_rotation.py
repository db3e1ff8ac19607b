"""An engine that trades on the localnet rotates its audit HMAC key live (``reload-secrets``) and
at a restart, keeps trading, and its log verifies across the key epochs (docs/AUDIT.md, "Key epochs")."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from tests.execution.conftest import BASE, Harness, merged_config
from tests.helpers import wait_until
from tests.plugins.engine import RECOVERY_KEYS, ks_status
from xorj_actors.audit import EpochMap, KeyRing, fingerprint, open_store, select_entries, state_keys, verify_store
from xorj_actors.credentials import open_credentials
from xorj_actors.engine import Engine
from xorj_actors.kill_switch import StateFile
from xorj_actors.secrets import install_provider

OLD = "first-audit-hmac-key-of-the-rotation-test-000000"
NEW = "second-audit-hmac-key-of-the-rotation-test-00000"
LATER = "third-audit-hmac-key-of-the-rotation-test-000000"


def _secret(directory: Path, name: str, value: str) -> None:
    path = directory / name
    tmp = path.with_suffix(".new")
    tmp.write_text(value + "\n")
    tmp.chmod(0o600)
    tmp.rename(path)


@contextlib.contextmanager
def _running(tmp_path: Path, secrets: Path) -> Iterator[Harness]:
    """An engine on the localnet, its credentials from ``secrets`` through the process's provider
    (as ``run`` does: every reader of the audit key asks it); stopped on exit."""
    config = merged_config(BASE, f'[secrets]\norder = ["file"]\n[secrets.file]\ndir = "{secrets}"\n')
    provider, resolution = open_credentials(config, dict(RECOVERY_KEYS), install=True)
    assert not resolution.missing
    engine = Engine(config, tmp_path / "var", environ=provider.environ(), credentials=provider)
    try:
        engine.start()
        h = Harness(engine)
        wait_until(lambda: h.reconciled(), 10, "executor reconciled")
        yield h
    finally:
        engine.stop(timeout=15)
        install_provider(None)


def _trade(h: Harness, trade_id: str) -> None:
    outcome = h.execute(h.request(trade_id, amount=1_000_000))
    assert outcome.status == "confirmed", outcome


def _entries(h: Harness) -> list:
    store = open_store(h.engine.config.audit, h.engine.data_dir, create=False)
    try:
        return list(select_entries(store))
    finally:
        store.close()


def _verify(h: Harness, keys: KeyRing):
    store = open_store(h.engine.config.audit, h.engine.data_dir, create=False)
    try:
        result = verify_store(store, keys)
    finally:
        store.close()
    assert result.ok, result
    return result


def test_a_trading_engine_rotates_its_audit_key_live_and_at_a_restart(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    _secret(secrets, "XORJ_AUDIT_HMAC_KEY", OLD)
    with _running(tmp_path, secrets) as h:
        state_file = h.engine.data_dir / h.engine.config.kill_switch.state_file
        _trade(h, "vault-0000:r1:0")
        # A new key alone is refused: the key in use is not retired, so the running engine keeps it.
        _secret(secrets, "XORJ_AUDIT_HMAC_KEY", NEW)
        held = h.engine.reload_secrets("ctl")
        assert held["held"] == ["XORJ_AUDIT_HMAC_KEY"] and "not among the retired keys" in held["audit_key"]["refused"]
        _trade(h, "vault-0000:r2:0")
        assert _verify(h, KeyRing(OLD.encode())).epochs == (fingerprint(OLD.encode()),)
        # The operator's procedure: retire the key in use, then reload.
        _secret(secrets, "XORJ_AUDIT_RETIRED_HMAC_KEYS", OLD)
        answer = h.engine.reload_secrets("ctl")
        assert answer["held"] == [] and answer["audit_key"]["new_fingerprint"] == fingerprint(NEW.encode())
        rotation = answer["audit_key"]["sequence"]
        _trade(h, "vault-0000:r3:0")
        # The kill switch's state file was rewritten under the new epoch's key at once.
        rekeyed = StateFile(state_file, state_keys(KeyRing(NEW.encode()), EpochMap())[0]).read().state
        assert rekeyed.audit_rotation == (rotation, fingerprint(NEW.encode()))  # a rollback past it is caught
    entries = _entries(h)
    assert entries[rotation - 1].event_type == "KEY_ROTATION"
    after = [e for e in entries if e.sequence > rotation and e.correlation_id == "vault-0000:r3:0"]
    assert after and all(e.event_type.startswith("TRADE_") for e in after)

    # Stopped, the key rotates again: the restart appends the KEY_ROTATION entry and trades on.
    _secret(secrets, "XORJ_AUDIT_RETIRED_HMAC_KEYS", f"{OLD},{NEW}")
    _secret(secrets, "XORJ_AUDIT_HMAC_KEY", LATER)
    with _running(tmp_path, secrets) as h:
        assert not h.engine.board.status.halted, ks_status(h.engine)  # the old epoch's state file accepted
        _trade(h, "vault-0000:r4:0")
        restarted = StateFile(state_file, state_keys(KeyRing(LATER.encode()), EpochMap())[0]).read().state
    entries = _entries(h)
    rotations = [e for e in entries if e.event_type == "KEY_ROTATION"]
    assert restarted.audit_rotation == (rotations[-1].sequence, fingerprint(LATER.encode()))  # the start-up rotation
    assert [json.loads(e.details)["reason"] for e in rotations] == ["reload", "start-up"]
    result = _verify(h, KeyRing(LATER.encode(), (OLD.encode(), NEW.encode())))
    assert result.epochs == tuple(fingerprint(k.encode()) for k in (OLD, NEW, LATER)), result
