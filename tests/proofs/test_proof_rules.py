"""The pure rules of execution proofs on a synthetic trade: building, signing, verifying."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from xorj_actors.audit import AnchorHead, AuditEntry, canonical_json, chain_hash, chain_hmac, entry_bytes, genesis_hash
from xorj_actors.proofs import (
    PROOF_FORMAT,
    ProofMismatch,
    build_body,
    check_against_chain,
    check_document,
    sign_body,
)
from xorj_actors.programs import NATIVE_MINT
from xorj_actors.proofs._document import chain_part
from xorj_actors.proofs.settings import ProofSettings
from xorj_actors.signers import open_backend

KEY = b"k" * 32
AUTHORITY = Keypair.from_seed(bytes(range(32)))
IN_MINT, OUT_MINT = str(Pubkey.new_unique()), str(Pubkey.new_unique())
IN_ACC, OUT_ACC = Pubkey.new_unique(), Pubkey.new_unique()
TRADE = "vault-0000:r1:0"


def _tx() -> VersionedTransaction:
    ix = transfer(TransferParams(from_pubkey=AUTHORITY.pubkey(), to_pubkey=IN_ACC, lamports=1))
    message = MessageV0.try_compile(AUTHORITY.pubkey(), [ix], [], Hash.default())
    return VersionedTransaction(message, [AUTHORITY])


TX = _tx()
SIG = str(TX.signatures[0])


def _entries(*, landed: bool = True, in_mint: str = IN_MINT) -> list[tuple[str, AuditEntry]]:
    intent = {"trade_id": TRADE, "vault_id": "vault-0000", "round_key": "r1", "index": 0, "input_mint": in_mint,
              "output_mint": OUT_MINT, "amount_in": 1000, "slippage_bps": 100, "value_usd": 1.0, "reduces_exposure": False}
    signed = {"phase": "signed", "attempt": 1, "signature": SIG, "api": "swap", "our_signature": None, "request_id": None,
              "transaction": base64.b64encode(bytes(TX)).decode(), "last_valid_block_height": 99, "in_amount": 1000,
              "out_amount": 500, "min_out": 495, "price_impact_bps": 1.5, "deviation_bps": None,
              "effects": {"verdict": "passed", "slot": 40, "pre": {str(IN_ACC): [2039280, 1000]},
                          "post": {str(IN_ACC): [2039280, 0]}}}
    outcome = {"vault_id": "vault-0000", "status": "confirmed" if landed else "rejected", "signature": SIG if landed else None,
               "slot": 42 if landed else None, "confirmations": 1, "error": None, "error_class": None,
               "in_amount": 1000, "out_amount": 497, "attempts": 1, "api": "swap"}
    rows = [("TRADE_INTENT", intent), ("SYSTEM_EVENT", {"other": 1})]
    rows += [("TRADE_EXECUTION", signed)] if landed else []
    rows += [("TRADE_CONFIRMATION", outcome)]
    out, prev = [], genesis_hash("default")
    for seq, (kind, details) in enumerate(rows, 1):
        corr = None if kind == "SYSTEM_EVENT" else TRADE
        text = canonical_json(details)
        args = (f"id-{seq}", seq, f"2026-12-04T00:00:0{seq}.000000Z", kind, "INFO", "executor", corr, text)
        h = chain_hash(prev, entry_bytes(*args))
        out.append(("default", AuditEntry(*args, prev_hash=prev, hash=h, hmac=chain_hmac(KEY, h))))
        prev = h
    return [(c, e) for c, e in out if e.correlation_id is not None]


def _balance(index: int, mint: str, amount: int) -> dict[str, Any]:
    return {"accountIndex": index, "mint": mint, "owner": str(AUTHORITY.pubkey()), "uiTokenAmount": {"amount": str(amount), "decimals": 6}}


CHAIN_TX = {
    "slot": 42, "blockTime": 1_700_000_000,
    "transaction": [base64.b64encode(bytes(TX)).decode(), "base64"],
    "meta": {"fee": 5000, "err": None,
             "preTokenBalances": [_balance(1, IN_MINT, 1000), _balance(0, OUT_MINT, 10)],
             "postTokenBalances": [_balance(1, IN_MINT, 0), _balance(0, OUT_MINT, 507)]},
}


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return open_backend(ProofSettings().key, environment="development", environ={}, data_dir=tmp_path_factory.mktemp("k"))


@pytest.fixture
def doc(signer: Any) -> dict[str, Any]:
    body = build_body(TRADE, _entries(), CHAIN_TX, "confirmed", None)
    return sign_body(body, signer, "2026-12-04T00:01:00.000000Z")


def test_a_proof_holds_every_part_and_verifies_after_a_round_trip(doc: dict[str, Any], signer: Any) -> None:
    assert doc["proof"] == PROOF_FORMAT and doc["intent"]["amount_in"] == 1000
    assert doc["quote"] == {"api": "swap", "in_amount": 1000, "out_amount": 500, "min_out": 495, "price_impact_bps": 1.5,
                            "deviation_bps": None, "request_id": None, "slippage_bps": 100}
    assert doc["effects"]["verdict"] == "passed" and doc["transaction"]["signature"] == SIG
    assert doc["chain"]["vault_token_balances"]["post"] == sorted(
        [{"account": str(AUTHORITY.pubkey()), "mint": OUT_MINT, "amount": 507}, {"account": str(IN_ACC), "mint": IN_MINT, "amount": 0}],
        key=lambda r: r["account"])
    # 497 received against 500 quoted: 60 bps worse.
    assert doc["realised"] == {"in_amount": 1000, "out_amount": 497, "slippage_bps": "60.00"}
    assert [e["event_type"] for e in doc["audit"]["entries"]] == ["TRADE_INTENT", "TRADE_EXECUTION", "TRADE_CONFIRMATION"]
    assert doc["audit"]["anchors"] == {"configured": False, "heads": {}}
    again = json.loads(json.dumps(doc, indent=2))  # any JSON layout: the signature covers the canonical form
    assert check_document(again, str(signer.public_key("proof-key"))) == doc["signer"]["public_key"]
    check_against_chain(again, CHAIN_TX)


def _amount(d: dict[str, Any]) -> None:
    d["intent"]["amount_in"] += 1


def _slot(d: dict[str, Any]) -> None:
    d["outcome"]["slot"] += 1


def _chain_slot(d: dict[str, Any]) -> None:
    d["chain"]["slot"] += 1


def _balance_edit(d: dict[str, Any]) -> None:
    d["chain"]["vault_token_balances"]["post"][0]["amount"] += 1


def _dropped(d: dict[str, Any]) -> None:
    del d["audit"]["entries"][1]


def _entry_edit(d: dict[str, Any]) -> None:
    d["audit"]["entries"][0]["details"] = d["audit"]["entries"][0]["details"].replace('"amount_in":1000', '"amount_in":1001')


def _swapped_tx(d: dict[str, Any]) -> None:
    d["transaction"]["signature"] = str(Keypair().sign_message(b"x"))


def _swapped_proof_sig(d: dict[str, Any]) -> None:
    d["signature"] = str(Keypair().sign_message(b"x"))


def _quote(d: dict[str, Any]) -> None:
    d["quote"]["out_amount"] = 400


@pytest.mark.parametrize(("edit", "where"), [
    (_amount, "intent.amount_in"), (_slot, "outcome.slot"), (_chain_slot, "chain.slot"), (_balance_edit, "realised."),
    (_dropped, "audit.entries"), (_entry_edit, "audit.entries[0] (default#1).hash"),
    (_swapped_tx, "transaction.signature"), (_swapped_proof_sig, "signature"), (_quote, "quote.out_amount"),
])
def test_each_edit_is_caught_and_named(doc: dict[str, Any], edit: Any, where: str) -> None:
    bad = copy.deepcopy(doc)
    edit(bad)
    with pytest.raises(ProofMismatch) as caught:
        check_document(bad)
    assert caught.value.where.startswith(where), caught.value


def test_a_consistent_edit_signed_again_is_caught_by_the_chain(doc: dict[str, Any], signer: Any) -> None:
    forged_chain = copy.deepcopy(CHAIN_TX)
    forged_chain["meta"]["postTokenBalances"][1]["uiTokenAmount"]["amount"] = "600"
    body = build_body(TRADE, _entries(), forged_chain, "confirmed", None)
    forged = sign_body(body, signer, doc["issued_at"])
    check_document(forged)  # consistent in itself, and signed
    with pytest.raises(ProofMismatch) as caught:
        check_against_chain(forged, CHAIN_TX)
    assert caught.value.where.startswith("chain.vault_token_balances.post") and "600" in str(caught.value)
    with pytest.raises(ProofMismatch, match="not on the chain"):
        check_against_chain(doc, None)


def test_another_proof_key_is_refused_when_one_is_pinned(doc: dict[str, Any]) -> None:
    with pytest.raises(ProofMismatch) as caught:
        check_document(doc, str(Keypair().pubkey()))
    assert caught.value.where == "signer.public_key"


def test_a_trade_that_signed_nothing_has_a_proof_without_a_transaction(signer: Any) -> None:
    doc = sign_body(build_body(TRADE, _entries(landed=False), None, "confirmed", None), signer, "t")
    assert doc["transaction"] is doc["chain"] is doc["realised"] is doc["quote"] is None
    check_document(doc)

    told = sign_body({**doc, "chain": {**chain_part(CHAIN_TX, "confirmed", str(AUTHORITY.pubkey())), "slot": None}}, signer, "t")
    with pytest.raises(ProofMismatch) as caught:  # a chain's record of no transaction
        check_document(told)
    assert caught.value.where == "chain" and "without a signed transaction" in caught.value.problem


def test_the_anchored_head_covering_the_entries_is_named(signer: Any) -> None:
    anchors = {"default": [AnchorHead(2, "a" * 64, "h", "s3://old"), AnchorHead(9, "b" * 64, "h", "s3://new")]}
    doc = sign_body(build_body(TRADE, _entries(), CHAIN_TX, "confirmed", anchors), signer, "t")
    assert doc["audit"]["anchors"] == {"configured": True, "heads": {"default": {"sequence": 9, "hash": "b" * 64, "source": "s3://new"}}}
    check_document(doc)
    early = sign_body(build_body(TRADE, _entries(), CHAIN_TX, "confirmed", {"default": anchors["default"][:1]}), signer, "t")
    assert early["audit"]["anchors"]["heads"] == {"default": None}  # not anchored yet


def test_a_missing_outcome_is_no_proof() -> None:
    with pytest.raises(ProofMismatch, match="TRADE_CONFIRMATION entry is missing"):
        build_body(TRADE, _entries()[:-1], None, "confirmed", None)


def test_the_signed_form_is_canonical(doc: dict[str, Any], tmp_path: Path) -> None:
    text = canonical_json(doc)
    assert json.loads(text) == doc and canonical_json(json.loads(text)) == text


def test_a_native_sol_leg_is_the_authoritys_lamports_less_the_fee(signer: Any) -> None:
    native = str(NATIVE_MINT)
    tx = copy.deepcopy(CHAIN_TX)
    tx["meta"]["preTokenBalances"] = [_balance(0, OUT_MINT, 10)]
    tx["meta"]["postTokenBalances"] = [_balance(0, OUT_MINT, 507)]
    tx["meta"]["preBalances"], tx["meta"]["postBalances"] = [1_000_000, 0, 1], [1_000_000 - 1000 - 5000, 0, 1]
    doc = sign_body(build_body(TRADE, _entries(in_mint=native), tx, "confirmed", None), signer, "t")
    assert doc["chain"]["vault_lamports"] == {"pre": 1_000_000, "post": 994_000, "fee_payer": True}
    assert doc["realised"] == {"in_amount": 1000, "out_amount": 497, "slippage_bps": "60.00"}
    check_document(doc)
    check_against_chain(doc, tx)
