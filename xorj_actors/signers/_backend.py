"""The interface every key store offers, and opening the configured one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from solders.pubkey import Pubkey

from xorj_actors.signers._vault_keys import VaultKeys, dev_vault_keypair
from xorj_actors.signers.settings import KeySettings

__all__ = ["Backend", "SignerError", "open_backend", "vault_key_board"]


class SignerError(RuntimeError):
    """A key cannot be used: missing, misconfigured, refused here, or its backend failed."""


class Backend(Protocol):
    """One key store holding one Ed25519 key per vault. Only public keys are ever in the
    engine's memory (dev keys aside)."""

    name: str  # "pkcs11", "kms" or "dev_key"

    def public_key(self, vault: str) -> Pubkey:
        """Vault ``vault``'s authority; :class:`SignerError` if the store has no key for it."""

    def sign(self, vault: str, message: bytes) -> bytes:
        """A 64-byte pure Ed25519 signature of ``message`` by vault ``vault``'s key."""

    def close(self) -> None:
        """Release the session or client (idempotent)."""


def open_backend(key: KeySettings, *, environment: str, environ: Mapping[str, str], data_dir: Path) -> Backend:
    """Open ``key``'s store on the calling thread (the thread that will use it).

    Raises:
        SignerError: the store cannot be opened, or refuses this environment.
    """
    if key.backend == "pkcs11":
        from xorj_actors.signers._pkcs11 import Pkcs11Backend

        return Pkcs11Backend.open(key.pkcs11, environ)
    if key.backend == "kms":
        from xorj_actors.signers._kms import KmsBackend

        return KmsBackend.open(key.kms)
    from xorj_actors.signers._dev_key import DevKeyBackend

    return DevKeyBackend.open(key.dev_key, environment=environment, data_dir=data_dir)


def vault_key_board(key: KeySettings, data_dir: Path) -> VaultKeys:
    """The board of ``key``'s vault keys. Derived development keys are all known at once (their
    public halves are harmless anywhere; the dev store's Signer refuses production); a PKCS#11
    or KMS store's keys appear as its Signer finds them.

    Raises:
        SignerError: a dev store's seed file cannot be read.
    """
    if key.backend != "dev_key":
        return VaultKeys(key.name)
    from xorj_actors.signers._dev_key import dev_seed

    seed = dev_seed(key.dev_key, data_dir)
    return VaultKeys(key.name, derive=lambda vault: dev_vault_keypair(seed, vault).pubkey())
