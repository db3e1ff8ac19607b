"""Signer actors: one per key store, holding one key per vault; the only path to funds.

Stores: PKCS#11 (Ed25519 keys generated inside an HSM, SoftHSM2 in development, labelled by
vault id), AWS KMS (``ECC_NIST_EDWARDS25519`` keys addressed by alias) and, in development only,
keys derived from a seed. See docs/SIGNERS.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xorj_actors.signers._backend import Backend, SignerError, open_backend, vault_key_board
from xorj_actors.signers._vault_keys import (
    LOCALNET_DEV_SEED,
    VaultKeys,
    dev_vault_keypair,
    parse_vault_ids,
    vault_id,
)
from xorj_actors.signers.settings import (
    BACKENDS,
    DevKeySettings,
    KeySettings,
    KmsSettings,
    Pkcs11Settings,
    SignerSettings,
)

if TYPE_CHECKING:
    from xorj_actors.signers._signer import (
        RESULTS,
        FindVaultKey,
        GetSignerHealth,
        SignerHealth,
        SignRequest,
        SignResult,
        Signer,
        VaultKeyFound,
        signer_name,
    )
    from xorj_actors.signers._rotation import JsonRpc, MoveError

__all__ = [
    "BACKENDS",
    "LOCALNET_DEV_SEED",
    "RESULTS",
    "Backend",
    "DevKeySettings",
    "FindVaultKey",
    "GetSignerHealth",
    "JsonRpc",
    "KeySettings",
    "KmsSettings",
    "MoveError",
    "Pkcs11Settings",
    "SignRequest",
    "SignResult",
    "Signer",
    "SignerError",
    "SignerHealth",
    "SignerSettings",
    "VaultKeyFound",
    "VaultKeys",
    "dev_vault_keypair",
    "open_backend",
    "parse_vault_ids",
    "signer_name",
    "vault_id",
    "vault_key_board",
]

# xorj_actors.config imports our settings: the actor half loads on first use, so that loading a
# config (every command does) does not import it (see xorj_actors/_lazy.py).
_ACTOR_NAMES = frozenset(
    {
        "RESULTS",
        "FindVaultKey",
        "GetSignerHealth",
        "SignerHealth",
        "SignRequest",
        "SignResult",
        "Signer",
        "VaultKeyFound",
        "signer_name",
    }
)


#: Stdlib JSON-RPC (``keys rotate``, ``proof``), loaded on first use too.
_RPC_NAMES = frozenset({"JsonRpc", "MoveError"})


def __getattr__(name: str) -> Any:
    if name in _ACTOR_NAMES:
        return getattr(importlib.import_module("xorj_actors.signers._signer"), name)
    if name in _RPC_NAMES:
        return getattr(importlib.import_module("xorj_actors.signers._rotation"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
