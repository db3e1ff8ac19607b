"""The proof key in each key store (SoftHSM2 over PKCS#11, KMS on ministack, a development seed
file): `keys init/show --key proof` create and list it, `proof show` signs with it, and `proof
verify` checks the proof against the audit store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.softhsm import SoftHsmToken
from xorj_actors.audit import AnchorSettings, AuditLog
from xorj_actors.config import load_config
from xorj_actors.proofs import check_document
from xorj_actors.signers import KmsSettings

TRADE = "vault-0000:r9:0"


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xorj_actors.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def _record_rejected_trade(config: Path, data_dir: Path) -> None:
    """A trade refused before signing: its intent and final outcome, as the executor writes them."""
    request = {"trade_id": TRADE, "vault_id": "vault-0000", "round_key": "r9", "index": 0, "input_mint": "A",
               "output_mint": "B", "amount_in": 5, "slippage_bps": 50, "value_usd": 1.0, "reduces_exposure": False}
    outcome = {"vault_id": "vault-0000", "status": "rejected", "signature": None, "slot": None, "confirmations": 0,
               "error": "insufficient funds", "error_class": "insufficient_funds", "in_amount": 0, "out_amount": 0,
               "attempts": 0, "api": None}
    cfg = load_config(config)
    log = AuditLog.open(cfg.audit, data_dir, cfg.engine.environment)
    try:
        log.append("TRADE_INTENT", actor="executor", correlation_id=TRADE, details=request)
        log.append("TRADE_CONFIRMATION", actor="executor", correlation_id=TRADE, details=outcome)
    finally:
        log.close()


def _ceremony(tmp_path: Path, key_toml: str, env: dict[str, str], *, created: bool = True, anchor: str = "") -> None:
    config, data_dir = tmp_path / "engine.toml", tmp_path / "var"
    config.write_text(f"[proofs.key]\n{key_toml}{anchor}")
    common = ("--config", str(config), "--data-dir", str(data_dir))
    init = _run("keys", "init", "--key", "proof", *common, env=env)
    assert init.returncode == (0 if created else 1), init.stderr
    shown = _run("keys", "show", "--key", "proof", *common, env=env)
    assert shown.returncode == 0, shown.stderr
    (line,) = shown.stdout.splitlines()
    name, public = line.split(": ")
    assert name == "proof-key"
    if created:
        assert init.stdout.strip() == line
        again = _run("keys", "init", "--key", "proof", *common, env=env)
        assert again.returncode == 1 and "already exists" in again.stderr  # one proof key; never replaced
    assert _run("keys", "show", "--key", "proof", "--vaults", "0", *common, env=env).returncode == 2

    _record_rejected_trade(config, data_dir)
    if anchor:
        anchored = _run("audit", "anchor", *common, env=env)
        assert anchored.returncode == 0, anchored.stderr
    proof_file = tmp_path / "proof.json"
    made = _run("proof", "show", TRADE, *common, "-o", str(proof_file), env=env)
    assert made.returncode == 0, made.stderr
    doc = json.loads(proof_file.read_text())
    assert doc["outcome"]["status"] == "rejected" and doc["transaction"] is None
    assert check_document(doc, public) == public
    if anchor:  # the head anchored after the outcome covers the proof's entries
        head = doc["audit"]["anchors"]["heads"]["default"]
        assert doc["audit"]["anchors"]["configured"] and head["sequence"] >= doc["audit"]["entries"][-1]["sequence"]
    else:
        assert doc["audit"]["anchors"] == {"configured": False, "heads": {}}
    verified = _run("proof", "verify", str(proof_file), "--public-key", public, *common, env=env)
    assert verified.returncode == 0 and "audit store" in verified.stdout, verified.stderr

    trail = _run("audit", "export", "--type", "KEY_OPERATION", *common, env=env)
    ops = [json.loads(line)["details"] for line in trail.stdout.splitlines()]
    assert [(o["what"], o["key"]) for o in ops][:2] == [("init", "proof"), ("show", "proof")]


def test_the_proof_key_in_softhsm(tmp_path: Path, softhsm_token: SoftHsmToken, hsm_key_label: str) -> None:
    _ceremony(tmp_path, 'backend = "pkcs11"\n' + softhsm_token.settings_toml(hsm_key_label), softhsm_token.environ)


def test_the_proof_key_in_kms_and_the_anchored_head(tmp_path: Path, kms_settings: KmsSettings, anchor_settings: AnchorSettings) -> None:
    toml = f'backend = "kms"\nkms.alias_prefix = "{kms_settings.alias_prefix}"\nkms.endpoint_url = "{kms_settings.endpoint_url}"\n'
    a = anchor_settings
    anchor = (f'[audit.anchor]\nenabled = true\nendpoint_url = "{a.endpoint_url}"\nbucket = "{a.bucket}"\n'
              f'prefix = "{a.prefix}"\nretention_days = 1\n')
    _ceremony(tmp_path, toml, {}, anchor=anchor)


def test_the_proof_key_from_a_development_seed_file(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "proof-seed").write_text("a private development proof seed\n")
    _ceremony(tmp_path, 'backend = "dev_key"\ndev_key.seed_file = "proof-seed"\n', {}, created=False)


def test_a_vault_store_cannot_take_the_proof_keys_name(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text('[[signers.keys]]\nname = "proof"\n')
    result = _run("keys", "show", "--config", str(config), "--data-dir", str(tmp_path / "var"), env={})
    assert result.returncode == 2 and "proof key" in result.stderr


@pytest.fixture
def kms_settings(ministack_endpoint: str, aws_env: None) -> KmsSettings:
    import uuid

    return KmsSettings(alias_prefix=f"xorj-proof-{uuid.uuid4().hex[:10]}-", endpoint_url=ministack_endpoint)
