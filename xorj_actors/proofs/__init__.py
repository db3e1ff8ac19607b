"""Execution proofs: a signed, canonical JSON document per final trade that anyone can check
against the audit entries it carries and against the chain (docs/AUDIT.md, "Execution proofs").

Pure rules (building a document from the trade's entries, canonical signing, verifying) live
apart from the I/O that feeds them (the audit store, ``getTransaction``, the anchors).
"""

from __future__ import annotations

from xorj_actors.proofs._check import check_against_chain, check_document
from xorj_actors.proofs._document import PROOF_FORMAT, build_body
from xorj_actors.proofs._entries import ProofMismatch
from xorj_actors.proofs._io import (
    ProofReadError,
    Rpc,
    anchor_heads,
    check_with_anchors,
    check_with_store,
    final_trade_ids,
    get_transaction,
    make_proof,
    trade_entries,
)
from xorj_actors.proofs._sign import ProofSigner, check_signature, sign_body, signed_bytes
from xorj_actors.proofs.settings import PROOF_KEY_ID, PROOF_STORE, ProofSettings

__all__ = [
    "PROOF_FORMAT",
    "PROOF_KEY_ID",
    "PROOF_STORE",
    "ProofMismatch",
    "ProofReadError",
    "ProofSettings",
    "ProofSigner",
    "Rpc",
    "anchor_heads",
    "build_body",
    "check_against_chain",
    "check_document",
    "check_signature",
    "check_with_anchors",
    "check_with_store",
    "final_trade_ids",
    "get_transaction",
    "make_proof",
    "sign_body",
    "signed_bytes",
    "trade_entries",
]
