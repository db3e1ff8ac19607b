"""``[proofs]``: the execution proofs' signing key and the commitment their chain reads use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from xorj_actors.signers.settings import KeySettings

__all__ = ["PROOF_KEY_ID", "PROOF_STORE", "ProofSettings"]

#: The proof key's name in its store: the PKCS#11 label ``<label_prefix>proof-key``, the KMS alias
#: ``alias/<alias_prefix>proof-key``, the dev key derived for ``proof-key``. Never a vault id
#: (``vault-0007``), so no vault's Signer can be asked to sign with it.
PROOF_KEY_ID = "proof-key"
#: ``xorj-actors keys --key proof`` names the proof key's store.
PROOF_STORE = "proof"


def _proof_store() -> KeySettings:
    return KeySettings(name=PROOF_STORE)


@dataclass(frozen=True, slots=True)
class ProofSettings:
    """``[proofs]``: where the Ed25519 proof key lives (``[proofs.key]``: a key store as in
    ``[[signers.keys]]``; ``pkcs11``, ``kms`` or, in development, ``dev_key``; its ``name`` is
    not used: the store is called ``proof``)."""

    key: KeySettings = field(default_factory=_proof_store)
    #: The commitment ``getTransaction`` is read at for a proof (never ``processed``).
    commitment: Literal["confirmed", "finalized"] = "confirmed"

    def validate(self) -> None:
        try:
            self.key.validate()
        except ValueError as exc:
            raise ValueError(f"key.{exc}") from None
