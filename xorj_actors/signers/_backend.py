"""The interface every signing backend offers, and opening the configured one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from solders.pubkey import Pubkey

from xorj_actors.signers.settings import KeySettings

__all__ = ["Backend", "SignerError", "check_public_key", "open_backend"]


class SignerError(RuntimeError):
    """A key cannot be used: missing, misconfigured, refused here, or its backend failed."""


class Backend(Protocol):
    """One Ed25519 key. Only the public key is ever in the engine's memory (dev key aside)."""

    name: str  # "pkcs11", "kms" or "dev_key"

    def public_key(self) -> Pubkey:
        """The key's public half."""

    def sign(self, message: bytes) -> bytes:
        """A 64-byte pure Ed25519 signature of ``message``; :class:`SignerError` on failure."""

    def close(self) -> None:
        """Release the session or client (idempotent)."""


def open_backend(key: KeySettings, *, environment: str, environ: Mapping[str, str], data_dir: Path) -> Backend:
    """Open ``key``'s backend on the calling thread (the thread that will use it).

    Raises:
        SignerError: the backend cannot be opened, or refuses this environment.
    """
    if key.backend == "pkcs11":
        from xorj_actors.signers._pkcs11 import Pkcs11Backend

        return Pkcs11Backend.open(key.pkcs11, environ)
    if key.backend == "kms":
        from xorj_actors.signers._kms import KmsBackend

        return KmsBackend.open(key.kms)
    from xorj_actors.signers._dev_key import DevKeyBackend

    return DevKeyBackend.open(key.dev_key, environment=environment, data_dir=data_dir)


def check_public_key(key: KeySettings, actual: Pubkey) -> None:
    """Fail closed unless the backend's key is the configured vault authority.

    Raises:
        SignerError: ``public_key`` is unset for an HSM/KMS key, or names another key.
    """
    if not key.public_key:
        if key.backend == "dev_key":
            return
        raise SignerError(
            f"{key.name}: public_key is not set; run `xorj-actors keys show --key {key.name}` and set "
            f"[[signers.keys]] public_key to the vault authority it shows"
        )
    if str(actual) != key.public_key:
        raise SignerError(
            f"{key.name}: the {key.backend} key is {actual}, not the configured vault authority {key.public_key}; "
            "refusing to sign with it"
        )
