"""Signer actors: one per key; the only path to funds.

Backends: PKCS#11 (an Ed25519 key generated inside an HSM, SoftHSM2 in development), AWS KMS
(``ECC_NIST_EDWARDS25519``) and, in development only, a key file. See docs/SIGNERS.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
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

# xorj_actors.config imports our settings: the actor half loads on first use, so that loading a
# config (every command does) does not import it (see xorj_actors/_lazy.py).
_ACTOR_NAMES = frozenset(
    {"RESULTS", "GetSignerHealth", "SignerHealth", "SignRequest", "SignResult", "Signer", "signer_name"}
)


def __getattr__(name: str) -> Any:
    if name in _ACTOR_NAMES:
        return getattr(importlib.import_module("xorj_actors.signers._signer"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
