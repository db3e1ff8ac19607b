"""Verifying a proof: pure rules, the first mismatch named (:class:`ProofMismatch`).

Inside the document: every audit entry's hash recomputes from its contents; the entries the proof
rests on are all there; every part the entries say (intent, quote, effect check, signed bytes,
outcome) is what they say; our signature in the signed bytes verifies under the vault's
authority; the realised amounts and slippage follow from the chain's balances; the proof key's
signature covers it all. Against the chain (:func:`check_against_chain`): ``getTransaction``
shows the same transaction, slot and balance changes.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.proofs._document import (
    PROOF_FORMAT,
    authority_of,
    chain_part,
    effects_part,
    outcome_part,
    quote_part,
    realised_part,
    roles,
    transaction_part,
)
from xorj_actors.proofs._entries import ProofMismatch, anchor_head, entry_details, entry_label, recomputed_hash
from xorj_actors.proofs._sign import check_signature

__all__ = ["check_against_chain", "check_document"]

_MISSING = object()


def _show(value: Any) -> str:
    return "nothing" if value is _MISSING else repr(value)


def _same(where: str, got: Any, want: Any, source: str) -> None:
    """``got`` (the proof's) equals ``want`` (what ``source`` says); else the first differing path."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want)):
            _same(f"{where}.{key}", got.get(key, _MISSING), want.get(key, _MISSING), source)
        return
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want)):
            _same(f"{where}[{i}]", g, w, source)
        return
    if got != want or type(got) is not type(want):
        raise ProofMismatch(where, f"{_show(got)} in the proof, {_show(want)} in {source}")


def _records(document: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    audit = document.get("audit")
    records = audit.get("entries") if isinstance(audit, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ProofMismatch("audit.entries", "missing or not a list of entries")
    for i, record in enumerate(records):
        where = f"audit.entries[{i}] ({entry_label(record)})"
        recomputed = recomputed_hash(record, where)
        if recomputed != record["hash"]:
            raise ProofMismatch(f"{where}.hash", f"{record['hash']} is not the hash of its contents ({recomputed})")
    return records


def _check_bytes(transaction: Mapping[str, Any]) -> None:
    """Our signature in the recorded bytes verifies under the vault's authority."""
    authority = authority_of(transaction)
    tx = VersionedTransaction.from_bytes(base64.b64decode(str(transaction["bytes"])))
    ours = Signature.from_string(str(transaction["our_signature"]))
    if not ours.verify(Pubkey.from_string(authority), to_bytes_versioned(tx.message)):
        raise ProofMismatch("transaction.our_signature", f"does not verify under the vault's authority {authority}")
    first = str(tx.signatures[0])
    if first != str(Signature.default()) and first != transaction.get("signature"):
        raise ProofMismatch("transaction.signature", f"{transaction.get('signature')} is not the bytes' signature {first}")


def check_document(document: Mapping[str, Any], pinned_key: str | None = None) -> str:
    """Check ``document`` on its own; the proof key it is signed with. Raises ProofMismatch."""
    if document.get("proof") != PROOF_FORMAT:
        raise ProofMismatch("proof", f"{document.get('proof')!r} is not {PROOF_FORMAT!r}")
    records = _records(document)
    trade_id = str(document.get("trade_id"))
    found = roles(records, trade_id)
    intent = entry_details(found["intent"], "intent")
    outcome = entry_details(found["outcome"], "outcome")
    signed = entry_details(found["signed"], "signed") if "signed" in found else None
    source = {k: f"audit entry {entry_label(r)}" for k, r in found.items()}
    _same("intent", document.get("intent"), intent, source["intent"])
    quote = quote_part(intent, signed)
    _same("quote", document.get("quote"), quote, source.get("signed", "the audit entries"))
    _same("effects", document.get("effects"), effects_part(signed), source.get("signed", "the audit entries"))
    transaction = transaction_part(signed, outcome)
    _same("transaction", document.get("transaction"), transaction, source.get("signed", "the audit entries"))
    _same("outcome", document.get("outcome"), outcome_part(outcome), source["outcome"])
    chain = document.get("chain")
    if transaction is not None:
        _check_bytes(transaction)
        if outcome.get("slot") is not None and chain is None:
            raise ProofMismatch("chain", "missing: the outcome names a landing slot")
    elif chain is not None:
        raise ProofMismatch("chain", "present without a signed transaction")
    if chain is not None:
        if not isinstance(chain, dict) or not isinstance(chain.get("vault_token_balances"), dict):
            raise ProofMismatch("chain", "not the chain's record of the transaction")
        _same("chain.slot", chain.get("slot"), outcome.get("slot"), source["outcome"])
        try:
            realised = realised_part(intent, quote, chain)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofMismatch("chain.vault_token_balances", f"unreadable: {exc!r}") from None
        _same("realised", document.get("realised"), realised, "the chain's balances in the proof")
    elif document.get("realised") is not None:
        raise ProofMismatch("realised", "present without the chain's record")
    _check_anchors(document, records)
    return check_signature(document, pinned_key)


def _check_anchors(document: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> None:
    anchors = document["audit"].get("anchors")
    if not isinstance(anchors, dict) or not isinstance(anchors.get("heads"), dict):
        raise ProofMismatch("audit.anchors", "missing")
    for chain, head in anchors["heads"].items():
        if head is None:
            continue
        head = anchor_head(chain, head)
        last = max((int(r["sequence"]) for r in records if r["chain"] == chain), default=None)
        if last is None or head["sequence"] < last:
            raise ProofMismatch(f"audit.anchors.heads.{chain}", f"head {head.get('sequence')} does not cover entry {last}")


def check_against_chain(document: Mapping[str, Any], tx: Mapping[str, Any] | None) -> None:
    """The chain's own record (``getTransaction``, base64) against the proof: the transaction
    (its id and our message), its slot, error and the vault's token balances. Raises ProofMismatch."""
    transaction, chain = document.get("transaction"), document.get("chain")
    if not isinstance(transaction, dict) or not isinstance(chain, dict):
        raise ProofMismatch("chain", "the proof names no landed transaction to compare")
    signature = transaction.get("signature")
    if tx is None:
        raise ProofMismatch("transaction.signature", f"{signature} is not on the chain at {chain.get('commitment')}")
    try:
        landed = VersionedTransaction.from_bytes(base64.b64decode(tx["transaction"][0]))
        recorded = VersionedTransaction.from_bytes(base64.b64decode(str(transaction["bytes"])))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ProofMismatch("chain", f"getTransaction's answer is unreadable: {exc!r}") from None
    _same("transaction.signature", signature, str(landed.signatures[0]), "the chain")
    if to_bytes_versioned(landed.message) != to_bytes_versioned(recorded.message):
        raise ProofMismatch("transaction.bytes", "the chain's transaction carries another message")
    _same("chain", chain, chain_part(tx, str(chain.get("commitment")), authority_of(transaction)), "the chain")
