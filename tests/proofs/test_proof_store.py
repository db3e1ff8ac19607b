"""A proof against the audit store: a forged entry, even signed again with the proof key, is not
the store's; a store the proof's trade is missing from says so."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.proofs.forge import edited_intent
from xorj_actors.audit import AuditLog, AuditSettings, open_store
from xorj_actors.proofs import ProofMismatch, check_document, check_with_store, make_proof, sign_body
from xorj_actors.proofs.settings import ProofSettings
from xorj_actors.signers import open_backend

TRADE = "vault-0000:r5:0"
INTENT = {"trade_id": TRADE, "vault_id": "vault-0000", "round_key": "r5", "index": 0, "input_mint": "A", "output_mint": "B",
          "amount_in": 5, "slippage_bps": 50, "value_usd": 1.0, "reduces_exposure": False}
OUTCOME = {"vault_id": "vault-0000", "status": "rejected", "signature": None, "slot": None, "confirmations": 0,
           "error": "halted", "error_class": "halted", "in_amount": 0, "out_amount": 0, "attempts": 0, "api": None}


@pytest.fixture
def store_and_proof(tmp_path: Path, audit_settings: AuditSettings, audit_key: bytes) -> Any:
    """A rejected trade's proof, on SQLite and on PostgreSQL."""
    settings = audit_settings
    log = AuditLog.open(settings, tmp_path, "development")
    log.append("TRADE_INTENT", actor="executor", correlation_id=TRADE, details=INTENT)
    log.append("SYSTEM_EVENT", actor="executor", details={"between": True})
    log.append("TRADE_CONFIRMATION", actor="executor", correlation_id=TRADE, details=OUTCOME)
    log.close()
    store = open_store(settings, tmp_path, create=False)
    signer = open_backend(ProofSettings().key, environment="development", environ={}, data_dir=tmp_path)
    doc = make_proof(store, audit_key, TRADE, rpc=None, commitment="confirmed", anchors=None, signer=signer, issued_at="t")
    yield store, doc, signer
    store.close()


def test_the_proof_is_the_stores(store_and_proof: Any, audit_key: bytes) -> None:
    store, doc, _ = store_and_proof
    check_document(doc)
    check_with_store(doc, store, audit_key)
    assert [e["sequence"] for e in doc["audit"]["entries"]] == [1, 3]


def test_a_forged_entry_signed_again_is_not_the_stores(store_and_proof: Any, audit_key: bytes) -> None:
    store, doc, signer = store_and_proof
    forged = edited_intent(doc)
    forged = sign_body({k: v for k, v in forged.items() if k not in ("signature", "signer", "issued_at")}, signer, "t")
    check_document(forged)  # consistent in itself: only the store knows
    with pytest.raises(ProofMismatch) as caught:
        check_with_store(forged, store, audit_key)
    assert caught.value.where == "audit.entries[0] (default#1).hash"


def test_an_entry_moved_to_another_place_is_caught(store_and_proof: Any, audit_key: bytes) -> None:
    store, doc, signer = store_and_proof
    moved = copy.deepcopy(doc)
    moved["audit"]["entries"][1]["sequence"] = 9
    with pytest.raises(ProofMismatch, match="hash"):
        check_document(moved)  # the sequence is part of the hashed entry
    with pytest.raises(ProofMismatch, match="no such entry in the audit store"):
        check_with_store(moved, store, audit_key)


@pytest.mark.parametrize("head", [{"sequence": 3}, {"hash": "a" * 64}, {"sequence": "3", "hash": "a" * 64}, "3"])
def test_a_malformed_anchored_head_is_a_named_mismatch(store_and_proof: Any, audit_key: bytes, head: Any) -> None:
    store, doc, signer = store_and_proof
    body = {k: v for k, v in doc.items() if k not in ("signature", "signer", "issued_at")}
    body["audit"] = {**body["audit"], "anchors": {"configured": True, "heads": {"default": head}}}
    told = sign_body(body, signer, "t")
    for check in (lambda: check_document(told), lambda: check_with_store(told, store, audit_key)):
        with pytest.raises(ProofMismatch) as caught:
            check()
        assert caught.value.where == "audit.anchors.heads.default" and "malformed" in caught.value.problem


def test_verify_reads_proofs_strictly_and_exits_by_verdict(store_and_proof: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xorj_actors.audit import canonical_json
    from xorj_actors.cli import main as cli_main

    _, doc, _ = store_and_proof
    good = tmp_path / "good.json"
    good.write_text(canonical_json(doc))
    key = ["--public-key", doc["signer"]["public_key"]]
    assert cli_main(["proof", "verify", str(good), "--no-store", *key]) == 0
    out = capsys.readouterr()
    assert "OK (signature, entry hashes; signed by proof key" in out.out
    assert "nothing checked that they are the log's entries" in out.err  # what --no-store leaves unproved
    twice = tmp_path / "twice.json"  # a second trade_id after the signed one: read one way or the other
    twice.write_text(canonical_json(doc)[:-1] + ',"trade_id":"someone-else"}')
    assert cli_main(["proof", "verify", str(twice), "--no-store", *key]) == 2
    assert "duplicate key 'trade_id'" in capsys.readouterr().err
    assert cli_main(["proof", "verify", str(tmp_path / "absent.json"), "--no-store", *key]) == 2


def test_a_self_signed_proof_is_not_trusted(store_and_proof: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A forger signs an edited proof with a key of their own and puts its public key in the
    ``signer``: the document is consistent in itself, but only the pinned proof key is trusted."""
    from xorj_actors.audit import canonical_json
    from xorj_actors.cli import main as cli_main
    from xorj_actors.signers import DevKeySettings, KeySettings

    _, doc, _ = store_and_proof
    (tmp_path / "forger-seed").write_text("the forger's own seed\n")
    forger = open_backend(KeySettings(name="proof", dev_key=DevKeySettings(seed_file="forger-seed")),
                          environment="development", environ={}, data_dir=tmp_path)
    forged = edited_intent(doc)
    forged = sign_body({k: v for k, v in forged.items() if k not in ("signature", "signer", "issued_at")}, forger, "t")
    assert forged["signer"]["public_key"] != doc["signer"]["public_key"]
    path = tmp_path / "forged.json"
    path.write_text(canonical_json(forged))
    capsys.readouterr()
    assert cli_main(["proof", "verify", str(path), "--no-store"]) == 2  # no trusted key: cannot check
    assert "no trusted proof key" in capsys.readouterr().err
    code = cli_main(["proof", "verify", str(path), "--no-store", "--public-key", doc["signer"]["public_key"]])
    assert code == 1 and "MISMATCH signer.public_key" in capsys.readouterr().err
    config = tmp_path / "engine.toml"  # the configured [proofs.key] store pins the key (the default dev store here)
    config.write_text("[engine]\nenvironment = \"development\"\n")
    code = cli_main(["proof", "verify", str(path), "--no-store", "--config", str(config), "--data-dir", str(tmp_path)])
    assert code == 1 and "MISMATCH signer.public_key" in capsys.readouterr().err
    path.write_text(canonical_json(doc))
    assert cli_main(["proof", "verify", str(path), "--no-store", "--config", str(config), "--data-dir", str(tmp_path)]) == 0


def test_an_audit_store_that_cannot_be_opened_cannot_check(store_and_proof: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xorj_actors.audit import canonical_json
    from xorj_actors.cli import main as cli_main

    _, doc, _ = store_and_proof
    path = tmp_path / "good.json"
    path.write_text(canonical_json(doc))
    capsys.readouterr()
    key = ["--public-key", doc["signer"]["public_key"]]
    code = cli_main(["proof", "verify", str(path), "--data-dir", str(tmp_path / "no-store-here"), *key])
    assert code == 2 and "the audit store cannot be opened" in capsys.readouterr().err
    assert cli_main(["proof", "verify", str(path), "--data-dir", str(tmp_path / "no-store-here"), "--no-store", *key]) == 0


def test_an_entry_remacd_with_a_retired_key_after_its_rotation_is_not_the_stores(data_dir: Path, raw_sql: Any,
                                                                                 audit_settings: AuditSettings,
                                                                                 audit_key: bytes) -> None:
    from xorj_actors.audit import KeyRing, chain_hmac
    from tests.audit.test_key_epochs import NEW, _open

    log = _open(audit_settings, data_dir, KeyRing(audit_key))
    log.append("TRADE_INTENT", actor="executor", correlation_id=TRADE, details=INTENT)
    log.rotate(NEW, "reload")
    outcome = log.append("TRADE_CONFIRMATION", actor="executor", correlation_id=TRADE, details=OUTCOME)
    log.close()
    ring = KeyRing(NEW, (audit_key,))
    store = open_store(audit_settings, data_dir, create=False)
    try:
        signer = open_backend(ProofSettings().key, environment="development", environ={}, data_dir=data_dir)
        doc = make_proof(store, ring, TRADE, rpc=None, commitment="confirmed", anchors=None, signer=signer, issued_at="t")
        check_with_store(doc, store, ring)
        # The outcome's HMAC redone under the retired key (its holder's only power): not under its epoch's key.
        raw_sql("UPDATE {t} SET hmac = ? WHERE sequence = ?", chain_hmac(audit_key, outcome.hash), outcome.sequence)
        with pytest.raises(ProofMismatch, match="does not verify under its key epoch's key"):
            check_with_store(doc, store, ring)
    finally:
        store.close()
