"""``[signers]``: one signing key per entry of ``[[signers.keys]]``, each with its backend."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from solders.pubkey import Pubkey

__all__ = [
    "BACKENDS",
    "LOCALNET_DEV_KEY_FILE",
    "LOCALNET_DEV_PUBLIC_KEY",
    "DevKeySettings",
    "KeySettings",
    "KmsSettings",
    "Pkcs11Settings",
    "SignerSettings",
]

#: Backend names, as used in settings and as the ``backend`` label of ``xorj_hsm_operations_total``.
BACKENDS: tuple[str, ...] = ("pkcs11", "kms", "dev_key")
#: Where the localnet writes its DEVELOPMENT vault authority (mode 0600), relative to the data
#: directory: the key of a ``dev_key`` without a ``path``. See docs/SIGNERS.md.
LOCALNET_DEV_KEY_FILE = "localnet-dev-key.json"
#: The public half of that key (tests/localnet checks it against the localnet's).
LOCALNET_DEV_PUBLIC_KEY = "6ViB3bKMw6AMqt5F9N5cg6hGwKErSVcY4kQTLiQRJ9ER"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Pkcs11Settings:
    """``[signers.keys.pkcs11]``: an Ed25519 key generated inside a PKCS#11 token."""

    #: The PKCS#11 module (SoftHSM2 in development; the HSM vendor's library in production).
    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str = "xorj"
    #: Label of the active key pair; rotation renames the old pair ``<label>.retired-<time>``.
    key_label: str = "vault-authority"
    #: Environment variable holding the user PIN.
    pin_env: str = "XORJ_HSM_PIN"

    def validate(self) -> None:
        if not self.module:
            raise ValueError("module: must not be empty")
        if not self.token_label or len(self.token_label.encode()) > 32:
            raise ValueError("token_label: must be 1 to 32 bytes")
        if not self.key_label or ".retired-" in self.key_label:
            raise ValueError("key_label: must be non-empty and must not contain '.retired-'")
        if not _ENV_NAME.match(self.pin_env):
            raise ValueError("pin_env: must be an environment variable name")


@dataclass(frozen=True, slots=True)
class KmsSettings:
    """``[signers.keys.kms]``: an AWS KMS ``ECC_NIST_EDWARDS25519`` key.

    Credentials come from the standard AWS environment variables (or the instance role).
    """

    #: ``alias/...`` (needed by ``keys init`` and ``keys rotate``), a key id or a key ARN.
    key_id: str = "alias/xorj-vault-authority"
    #: Empty: the AWS default endpoint; set it for ministack (``http://127.0.0.1:4566``).
    endpoint_url: str = ""
    region: str = "us-east-1"
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    #: Attempts per call (botocore's standard retry mode: backoff and jitter).
    max_attempts: int = 3

    def validate(self) -> None:
        if not self.key_id:
            raise ValueError("key_id: must not be empty")
        if self.endpoint_url and not self.endpoint_url.startswith(("http://", "https://")):
            raise ValueError("endpoint_url: must be an http:// or https:// URL")
        if not self.region:
            raise ValueError("region: must not be empty")
        if not 0 < self.connect_timeout_s <= 60 or not 0 < self.read_timeout_s <= 60:
            raise ValueError("connect_timeout_s, read_timeout_s: must be in (0, 60]")
        if not 1 <= self.max_attempts <= 10:
            raise ValueError("max_attempts: must be between 1 and 10")


@dataclass(frozen=True, slots=True)
class DevKeySettings:
    """``[signers.keys.dev_key]``: a key in a file. Development only: refused in production."""

    #: A Solana CLI keypair file (JSON array of 64 bytes), relative to the data directory.
    #: Empty: :data:`LOCALNET_DEV_KEY_FILE`, the localnet's DEVELOPMENT vault authority, whose
    #: secret is public.
    path: str = ""


@dataclass(frozen=True, slots=True)
class KeySettings:
    """``[[signers.keys]]``: one key and the backend that holds it."""

    #: The key's name; its actor is ``signer:<name>``.
    name: str = "vault-authority"
    backend: Literal["pkcs11", "kms", "dev_key"] = "dev_key"
    #: Base58 public key of the vault authority this key must be. Required for ``pkcs11`` and
    #: ``kms`` (the signer refuses to start without it, or when the key differs).
    public_key: str = ""
    pkcs11: Pkcs11Settings = field(default_factory=Pkcs11Settings)
    kms: KmsSettings = field(default_factory=KmsSettings)
    dev_key: DevKeySettings = field(default_factory=DevKeySettings)

    def validate(self) -> None:
        if not _KEY_NAME.match(self.name):
            raise ValueError("name: 1 to 64 of letters, digits, '_', '.', '-', starting with a letter or digit")
        if self.public_key:
            try:
                Pubkey.from_string(self.public_key)
            except ValueError:
                raise ValueError(f"public_key: not a base58 public key: {self.public_key!r}") from None


@dataclass(frozen=True, slots=True)
class SignerSettings:
    """``[signers]``: the signing keys; one Signer actor each."""

    keys: tuple[KeySettings, ...] = (KeySettings(),)

    def validate(self) -> None:
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("keys: key names must be distinct")
        tokens = [(k.pkcs11.module, k.pkcs11.token_label) for k in self.keys if k.backend == "pkcs11"]
        if len(set(tokens)) != len(tokens):
            # Each signer holds its token's only session on its own thread (python-pkcs11 with
            # SoftHSM crashes when two threads use it, and a token allows one login per process).
            raise ValueError("keys: two pkcs11 keys share a token; use one token per key")

    def key(self, name: str) -> KeySettings:
        """The key called ``name``; KeyError naming the configured ones otherwise."""
        for k in self.keys:
            if k.name == name:
                return k
        raise KeyError(f"no key {name!r} in [signers] (configured: {', '.join(k.name for k in self.keys) or 'none'})")
