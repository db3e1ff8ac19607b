"""Offline Solana cluster, quote service and quantitative engine speaking the real protocols.

``Localnet`` runs them in-process on loopback ports (see docs/LOCALNET.md); ``build_genesis``
gives every address the localnet creates, from its settings and the token registry.
"""

from __future__ import annotations

from xorj_actors.localnet.chain import ChainView
from xorj_actors.localnet.dev_key import write_dev_key
from xorj_actors.localnet.genesis import (
    TOKEN_PROGRAM_ID,
    Genesis,
    TokenSpec,
    VaultSpec,
    apply_genesis,
    build_genesis,
    dev_vault_authority,
    swap_transaction,
    vault_token_account,
)
from xorj_actors.localnet.runner import Localnet
from xorj_actors.localnet.server import Faults, LocalnetServer
from xorj_actors.localnet.settings import LocalnetSettings, MarketSettings

__all__ = [
    "TOKEN_PROGRAM_ID",
    "ChainView",
    "Faults",
    "Genesis",
    "Localnet",
    "LocalnetServer",
    "LocalnetSettings",
    "MarketSettings",
    "TokenSpec",
    "VaultSpec",
    "apply_genesis",
    "build_genesis",
    "dev_vault_authority",
    "swap_transaction",
    "vault_token_account",
    "write_dev_key",
]
