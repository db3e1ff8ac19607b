"""``[signers]``: one key store per entry of ``[[signers.keys]]``, each holding one key per vault."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BACKENDS",
    "DevKeySettings",
    "KeySettings",
    "KmsSettings",
    "Pkcs11Settings",
    "SignerSettings",
]

#: Backend names, as used in settings and as the ``backend`` label of ``xorj_hsm_operations_total``.
BACKENDS: tuple[str, ...] = ("pkcs11", "kms", "dev_key")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{0,32}$")


@dataclass(frozen=True, slots=True)
class Pkcs11Settings:
    """``[signers.keys.pkcs11]``: a PKCS#11 token holding one Ed25519 key pair per vault.

    Each pair is generated inside the token, sensitive and never extractable, and labelled
    ``<label_prefix><vault id>`` (``vault-0007`` by default).
    """

    #: The PKCS#11 module (SoftHSM2 in development; the HSM vendor's library in production).
    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str = "xorj"
    #: Put before the vault id in each key pair's label (empty: the label is the vault id).
    label_prefix: str = ""
    #: Environment variable holding the user PIN.
    pin_env: str = "XORJ_HSM_PIN"

    def validate(self) -> None:
        if not self.module:
            raise ValueError("module: must not be empty")
        if not self.token_label or len(self.token_label.encode()) > 32:
            raise ValueError("token_label: must be 1 to 32 bytes")
        if not _PREFIX.match(self.label_prefix):
            raise ValueError("label_prefix: at most 32 of letters, digits, '_', '.', '-'")
        if not _ENV_NAME.match(self.pin_env):
            raise ValueError("pin_env: must be an environment variable name")


@dataclass(frozen=True, slots=True)
class KmsSettings:
    """``[signers.keys.kms]``: one AWS KMS ``ECC_NIST_EDWARDS25519`` key per vault.

    Vault ``vault-0007``'s key is the one its alias ``alias/<alias_prefix>vault-0007`` names.
    Credentials come from the standard AWS environment variables (or the instance role).
    """

    #: Put between ``alias/`` and the vault id (KMS reserves ``alias/aws/``).
    alias_prefix: str = "xorj-"
    #: Empty: the AWS default endpoint; set it for ministack (``http://127.0.0.1:4566``).
    endpoint_url: str = ""
    region: str = "us-east-1"
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    #: Attempts per call (botocore's standard retry mode: backoff and jitter).
    max_attempts: int = 3

    def validate(self) -> None:
        if not _PREFIX.match(self.alias_prefix) or self.alias_prefix.lower().startswith("aws"):
            raise ValueError("alias_prefix: at most 32 of letters, digits, '_', '.', '-', not starting with 'aws'")
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
    """``[signers.keys.dev_key]``: keys derived from a seed. Development only: refused in production.

    Vault ``v``'s key is ``signers.dev_vault_keypair(seed, v)``.
    """

    #: A file holding the seed (its text, stripped), relative to the data directory. Empty: the
    #: localnet's public DEVELOPMENT seed (``signers.LOCALNET_DEV_SEED``), the localnet's vaults.
    seed_file: str = ""


@dataclass(frozen=True, slots=True)
class KeySettings:
    """``[[signers.keys]]``: one key store (a token, a KMS account, a dev seed), one key per vault."""

    #: The store's name; its actor is ``signer:<name>``.
    name: str = "vault-authority"
    backend: Literal["pkcs11", "kms", "dev_key"] = "dev_key"
    pkcs11: Pkcs11Settings = field(default_factory=Pkcs11Settings)
    kms: KmsSettings = field(default_factory=KmsSettings)
    dev_key: DevKeySettings = field(default_factory=DevKeySettings)

    def validate(self) -> None:
        if not _KEY_NAME.match(self.name):
            raise ValueError("name: 1 to 64 of letters, digits, '_', '.', '-', starting with a letter or digit")


@dataclass(frozen=True, slots=True)
class SignerSettings:
    """``[signers]``: the key stores; one Signer actor each."""

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
