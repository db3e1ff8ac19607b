"""Signer actors: one per key; the only path to funds.

Backends: PKCS#11 (an Ed25519 key generated inside an HSM, SoftHSM2 in development), AWS KMS
(``ECC_NIST_EDWARDS25519``) and, in development only, a key file. See docs/SIGNERS.md.
"""

from __future__ import annotations

from xorj_actors.signers._backend import Backend, SignerError, check_public_key, open_backend
from xorj_actors.signers.settings import (
    BACKENDS,
    LOCALNET_DEV_KEY_FILE,
    LOCALNET_DEV_PUBLIC_KEY,
    DevKeySettings,
    KeySettings,
    KmsSettings,
    Pkcs11Settings,
    SignerSettings,
)
from xorj_actors.signers._signer import (
    RESULTS,
    GetSignerHealth,
    SignerHealth,
    SignRequest,
    SignResult,
    Signer,
    signer_name,
)

__all__ = [
    "BACKENDS",
    "LOCALNET_DEV_KEY_FILE",
    "LOCALNET_DEV_PUBLIC_KEY",
    "RESULTS",
    "Backend",
    "DevKeySettings",
    "GetSignerHealth",
    "KeySettings",
    "KmsSettings",
    "Pkcs11Settings",
    "SignRequest",
    "SignResult",
    "Signer",
    "SignerError",
    "SignerHealth",
    "SignerSettings",
    "check_public_key",
    "open_backend",
    "signer_name",
]
