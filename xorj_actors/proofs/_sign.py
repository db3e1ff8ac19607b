"""The proof's own signature: Ed25519 by the proof key over
``xorj-execution-proof/1:<SHA-256 hex of the canonical JSON of the document without its
signature field>`` (ASCII). A digest, not the document: a KMS signs at most 4 KiB, and the
prefix keeps these signatures apart from any Solana transaction's."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from solders.pubkey import Pubkey
from solders.signature import Signature

from xorj_actors.audit import canonical_json
from xorj_actors.proofs._entries import ProofMismatch
from xorj_actors.proofs.settings import PROOF_KEY_ID

__all__ = ["ProofSigner", "check_signature", "sign_body", "signed_bytes"]

_DOMAIN = "xorj-execution-proof/1"


class ProofSigner(Protocol):
    """What signs a proof: a key store (:class:`xorj_actors.signers.Backend`) holding the proof key."""

    name: str

    def public_key(self, vault: str) -> Pubkey: ...

    def sign(self, vault: str, message: bytes) -> bytes: ...


def signed_bytes(document: Mapping[str, Any]) -> bytes:
    """What the signature covers: the prefixed digest of the canonical document without ``signature``."""
    canonical = canonical_json({k: v for k, v in document.items() if k != "signature"}).encode("utf-8")
    return f"{_DOMAIN}:{hashlib.sha256(canonical).hexdigest()}".encode("ascii")


def sign_body(body: Mapping[str, Any], signer: ProofSigner, issued_at: str) -> dict[str, Any]:
    """``body`` with its issuer (the proof key and its store) and the proof key's signature."""
    document = {
        **body, "issued_at": issued_at,
        "signer": {"key_id": PROOF_KEY_ID, "public_key": str(signer.public_key(PROOF_KEY_ID)), "backend": signer.name},
    }
    document["signature"] = str(Signature.from_bytes(signer.sign(PROOF_KEY_ID, signed_bytes(document))))
    return document


def check_signature(document: Mapping[str, Any], pinned: str | None = None) -> str:
    """The proof key's public key, once the document's signature verifies under it (and it is
    ``pinned``, when given). ProofMismatch otherwise."""
    signer = document.get("signer")
    if not isinstance(signer, dict):
        raise ProofMismatch("signer", "missing")
    try:
        public = Pubkey.from_string(str(signer.get("public_key")))
        signature = Signature.from_string(str(document.get("signature")))
    except ValueError as exc:
        raise ProofMismatch("signature", f"unreadable: {exc}") from None
    if pinned is not None and str(public) != pinned:
        raise ProofMismatch("signer.public_key", f"{public} is not the expected proof key {pinned}")
    if not signature.verify(public, signed_bytes(document)):
        raise ProofMismatch("signature", f"does not verify under the proof key {public}: the document was changed")
    return str(public)
