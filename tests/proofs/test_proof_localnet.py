"""A real localnet trade's proof verifies against the audit store and the chain; every edited
field is caught and named."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.execution.conftest import Harness
from tests.proofs.forge import rehash
from xorj_actors.audit import canonical_json
from xorj_actors.cli import main as cli_main
from xorj_actors.proofs import PROOF_KEY_ID, ProofMismatch, Rpc, check_document, get_transaction, sign_body
from xorj_actors.proofs.settings import ProofSettings
from xorj_actors.signers import open_backend


def _proof(h: Harness, trade_id: str, out: Path) -> dict[str, Any]:
    rpc = h.localnet.urls["rpc"]
    code = cli_main(["proof", "show", trade_id, "--data-dir", str(h.engine.data_dir), "--rpc", rpc, "-o", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def _verify(h: Harness, doc: dict[str, Any], path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    code = cli_main(["proof", "verify", str(path), "--data-dir", str(h.engine.data_dir), *_pinned(h), *extra])
    return code, capsys.readouterr().err


def _pinned(h: Harness) -> list[str]:
    """``--public-key`` of the proof key the engine's proofs are signed with (the default dev store)."""
    backend = open_backend(ProofSettings().key, environment="development", environ={}, data_dir=h.engine.data_dir)
    return ["--public-key", str(backend.public_key(PROOF_KEY_ID))]


def _resigned(doc: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """``doc`` signed again by the proof key (one who holds it, editing consistently)."""
    body = {k: v for k, v in doc.items() if k not in ("signature", "signer", "issued_at")}
    backend = open_backend(ProofSettings().key, environment="development", environ={}, data_dir=data_dir)
    return sign_body(body, backend, doc["issued_at"])


def test_a_real_trade_proof_verifies_and_every_edit_is_named(harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = harness
    rpc = h.localnet.urls["rpc"]
    first = h.execute(h.request("vault-0000:r1:0", amount=10_000_000))
    second = h.execute(h.request("vault-0001:r1:0", vault=1, amount=5_000_000))
    assert first.status == second.status == "confirmed"
    doc = _proof(h, "vault-0000:r1:0", tmp_path / "a.json")
    other = _proof(h, "vault-0001:r1:0", tmp_path / "b.json")

    # What it holds: the recorded trade, the effect check's simulated balances, the chain's record.
    assert doc["intent"]["amount_in"] == 10_000_000 and doc["outcome"]["slot"] == first.slot
    assert doc["transaction"]["signature"] == first.signature
    assert doc["effects"]["verdict"] == "passed" and doc["effects"]["pre"] and doc["effects"]["post"]
    assert doc["chain"]["slot"] == first.slot and doc["chain"]["vault_token_balances"]["post"]
    assert doc["realised"]["in_amount"] == 10_000_000 and doc["realised"]["out_amount"] == first.out_amount
    assert doc["signer"]["key_id"] == PROOF_KEY_ID
    kinds = [e["event_type"] for e in doc["audit"]["entries"]]
    assert {"TRADE_INTENT", "TRADE_EXECUTION", "TRADE_CONFIRMATION"} <= set(kinds)
    assert doc["audit"]["anchors"] == {"configured": False, "heads": {}}

    code, err = _verify(h, doc, tmp_path / "ok.json", capsys, "--rpc", rpc)
    assert code == 0, err

    # Every final trade since a time: one proof per line, or one file each; all verify.
    exported = tmp_path / "all.jsonl"
    since = ["--since", "2000-01-01T00:00:00Z", "--data-dir", str(h.engine.data_dir), "--rpc", rpc]
    assert cli_main(["proof", "export", *since, "-o", str(exported)]) == 0
    assert [json.loads(line)["trade_id"] for line in exported.read_text().splitlines()] == ["vault-0000:r1:0", "vault-0001:r1:0"]
    assert cli_main(["proof", "export", *since, "--dir", str(tmp_path / "each")]) == 0
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["vault-0000_r1_0.json", "vault-0001_r1_0.json"]
    capsys.readouterr()
    assert cli_main(["proof", "verify", str(exported), "--data-dir", str(h.engine.data_dir), "--rpc", rpc, *_pinned(h)]) == 0
    assert capsys.readouterr().out.count(": OK (signature, entry hashes, audit store, chain;") == 2
    # A trade that cannot be proven now (here: the chain cannot be read) is named, the rest still tried.
    dead = ["--since", "2000-01-01T00:00:00Z", "--data-dir", str(h.engine.data_dir), "--rpc", f"http://127.0.0.1:{free_port()}"]
    assert cli_main(["proof", "export", *dead, "-o", str(tmp_path / "dead.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "proof export: 0 proofs, 2 not issued" in err, err
    assert "vault-0000:r1:0: not issued:" in err and "vault-0001:r1:0: not issued:" in err, err
    none = ["--since", "2999-01-01T00:00:00Z", "--data-dir", str(h.engine.data_dir), "-o", str(tmp_path / "none")]
    assert cli_main(["proof", "export", *none]) == 0 and (tmp_path / "none").read_text() == ""

    def caught(edit: Any, where: str, *extra: str) -> None:
        bad = copy.deepcopy(doc)
        edit(bad)
        code, err = _verify(h, bad, tmp_path / "bad.json", capsys, *extra)
        assert code == 1 and f"MISMATCH {where}" in err, err

    def amount(d: dict[str, Any]) -> None:
        d["intent"]["amount_in"] = 1_000_000

    def slot(d: dict[str, Any]) -> None:
        d["outcome"]["slot"] += 1

    def balance(d: dict[str, Any]) -> None:
        d["chain"]["vault_token_balances"]["post"][0]["amount"] += 1

    def dropped(d: dict[str, Any]) -> None:
        d["audit"]["entries"] = [e for e in d["audit"]["entries"] if e["event_type"] != "TRADE_CONFIRMATION"]

    def swapped(d: dict[str, Any]) -> None:
        d["signature"] = other["signature"]

    def swapped_tx(d: dict[str, Any]) -> None:
        d["transaction"]["signature"] = other["transaction"]["signature"]

    caught(amount, "intent.amount_in")
    caught(slot, "outcome.slot")
    caught(balance, "realised")
    caught(dropped, "audit.entries")
    caught(swapped, "signature")
    caught(swapped_tx, "transaction.signature")

    # One holding the proof key edits a balance consistently and signs again: the chain disagrees.
    forged = copy.deepcopy(doc)
    balance(forged)
    forged["realised"] = None
    forged = _resigned(forged, h.engine.data_dir)
    with pytest.raises(ProofMismatch):
        check_document(forged)  # realised must follow from the balances
    fixed = copy.deepcopy(forged)
    row = fixed["chain"]["vault_token_balances"]["post"][0]
    from xorj_actors.proofs._document import realised_part  # noqa: PLC0415 - the rule under test

    fixed["realised"] = realised_part(fixed["intent"], fixed["quote"], fixed["chain"])
    fixed = _resigned(fixed, h.engine.data_dir)
    assert check_document(fixed)
    code, err = _verify(h, fixed, tmp_path / "forged.json", capsys, "--rpc", rpc)
    assert code == 1 and "MISMATCH chain.vault_token_balances.post[0].amount" in err and str(row["amount"]) in err, err

    # One holding the proof key says the landed trade expired (no chain part) and leaves the store
    # out: consistent in itself, but --rpc finds its transaction finalized.
    expired = _said_expired(doc, h.engine.data_dir)
    code, err = _verify(h, expired, tmp_path / "expired.json", capsys, "--no-store")
    assert code == 0, err  # nothing but the chain can tell
    deadline = time.monotonic() + 60
    while get_transaction(Rpc(rpc), doc["transaction"]["signature"], "finalized") is None:
        assert time.monotonic() < deadline, "the trade's transaction never finalized on the localnet"
        time.sleep(0.2)
    code, err = _verify(h, expired, tmp_path / "expired.json", capsys, "--no-store", "--rpc", rpc)
    assert code == 1 and "MISMATCH chain: missing: transaction" in err and "finalized" in err, err


def _said_expired(doc: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """``doc`` re-told as an expired trade: its outcome entry edited (slot gone, hash recomputed),
    no chain part, signed again with the proof key."""
    forged = copy.deepcopy(doc)
    entry = next(e for e in forged["audit"]["entries"] if e["event_type"] == "TRADE_CONFIRMATION")
    details = {**json.loads(entry["details"]), "status": "expired", "slot": None, "confirmations": 0}
    entry["details"] = canonical_json(details)
    rehash(entry)
    forged["outcome"].update(status="expired", slot=None, confirmations=0)
    forged["chain"] = forged["realised"] = None
    return _resigned(forged, data_dir)


def test_an_ultra_trade_the_maker_paid_for_has_a_proof_that_verifies(
    exec_engine_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = exec_engine_factory('[jupiter]\napi = "ultra"\n')
    outcome = h.execute(h.request("vault-0002:r1:0", vault=2, amount=10_000_000))
    assert outcome.status == "confirmed" and outcome.api == "ultra", outcome
    doc = _proof(h, "vault-0002:r1:0", tmp_path / "u.json")
    # The id is the maker's signature, learnt at /execute; ours is the vault's, in the signed bytes.
    assert doc["transaction"]["signature"] == outcome.signature != doc["transaction"]["our_signature"]
    assert "sent" in [json.loads(e["details"]).get("phase") for e in doc["audit"]["entries"]]
    assert doc["realised"]["in_amount"] == 10_000_000 and doc["realised"]["out_amount"] > 0
    code, err = _verify(h, doc, tmp_path / "u-ok.json", capsys, "--rpc", h.localnet.urls["rpc"])
    assert code == 0, err
