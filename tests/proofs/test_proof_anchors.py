"""`proof verify` against the anchors (S3 Object Lock on ministack): without the audit store, an
entry edited consistently and signed again with the proof key is not the anchored entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.proofs.forge import edited_intent
from xorj_actors.audit import AnchorSettings, AuditLog, canonical_json
from xorj_actors.cli import main as cli_main
from xorj_actors.config import load_config
from xorj_actors.proofs import sign_body
from xorj_actors.signers import open_backend

TRADE = "vault-0000:r7:0"
INTENT = {"trade_id": TRADE, "vault_id": "vault-0000", "round_key": "r7", "index": 0, "input_mint": "A", "output_mint": "B",
          "amount_in": 5, "slippage_bps": 50, "value_usd": 1.0, "reduces_exposure": False}
OUTCOME = {"vault_id": "vault-0000", "status": "rejected", "signature": None, "slot": None, "confirmations": 0,
           "error": "halted", "error_class": "halted", "in_amount": 0, "out_amount": 0, "attempts": 0, "api": None}


def _forged(doc: dict[str, Any], config: Path, data_dir: Path) -> dict[str, Any]:
    """``doc`` with its intent's amount edited consistently and signed again with the proof key."""
    forged = edited_intent(doc)
    cfg = load_config(config)
    signer = open_backend(cfg.proofs.key, environment="development", environ={}, data_dir=data_dir)
    return sign_body({k: v for k, v in forged.items() if k not in ("signature", "signer", "issued_at")}, signer, "t")


def test_without_the_store_the_anchors_catch_an_edited_entry(
    tmp_path: Path, anchor_settings: AnchorSettings, capsys: pytest.CaptureFixture[str],
) -> None:
    a = anchor_settings
    config, data_dir = tmp_path / "engine.toml", tmp_path / "var"
    config.write_text(f'[audit.anchor]\nenabled = true\nendpoint_url = "{a.endpoint_url}"\nbucket = "{a.bucket}"\n'
                      f'prefix = "{a.prefix}"\nretention_days = 1\n')
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    cfg = load_config(config)
    log = AuditLog.open(cfg.audit, data_dir, "development")
    log.append("TRADE_INTENT", actor="executor", correlation_id=TRADE, details=INTENT)
    log.append("TRADE_CONFIRMATION", actor="executor", correlation_id=TRADE, details=OUTCOME)
    log.close()
    assert cli_main(["audit", "anchor", *common]) == 0
    proof = tmp_path / "proof.json"
    assert cli_main(["proof", "show", TRADE, *common, "-o", str(proof)]) == 0
    doc = json.loads(proof.read_text())
    assert doc["audit"]["anchors"]["heads"]["default"] is not None

    capsys.readouterr()
    assert cli_main(["proof", "verify", str(proof), "--no-store", *common]) == 0
    out = capsys.readouterr()
    assert "OK (signature, entry hashes, anchors;" in out.out and "the anchors vouch for the anchored entries" in out.err

    forged = tmp_path / "forged.json"
    forged.write_text(canonical_json(_forged(doc, config, data_dir)))
    assert cli_main(["proof", "verify", str(forged), "--no-store", *common]) == 1
    err = capsys.readouterr().err
    assert "MISMATCH audit.entries[0] (default#1).hash" in err and "in the anchor" in err, err
