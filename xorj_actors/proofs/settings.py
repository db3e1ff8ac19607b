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

    def shared_with(self, vault: KeySettings) -> str | None:
        """What makes the vault key store ``vault`` the proof key's own store (None: nothing).
        A vault's Signer on the proof key's store would hold the proof key under the vault id
        ``proof-key``, so the two must be apart (docs/SECURITY.md, "The proof key")."""
        key = self.key
        if key.backend != vault.backend:
            return None
        if key.backend == "pkcs11" and (key.pkcs11.module, key.pkcs11.token_label, key.pkcs11.label_prefix) == (
                vault.pkcs11.module, vault.pkcs11.token_label, vault.pkcs11.label_prefix):
            return f"PKCS#11 token {key.pkcs11.token_label!r}, label prefix {key.pkcs11.label_prefix!r}"
        if key.backend == "kms" and (key.kms.endpoint_url, key.kms.region, key.kms.alias_prefix) == (
                vault.kms.endpoint_url, vault.kms.region, vault.kms.alias_prefix):
            return f"KMS alias prefix {key.kms.alias_prefix!r} in {key.kms.region}"
        if key.backend == "dev_key" and key.dev_key.seed_file and key.dev_key.seed_file == vault.dev_key.seed_file:
            return f"dev_key seed file {key.dev_key.seed_file!r}"
        return None
