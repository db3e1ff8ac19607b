"""Offline Solana cluster, quote service and quantitative engine speaking the real protocols.

``Localnet`` runs them in-process on loopback ports (see docs/LOCALNET.md); ``build_genesis``
gives every address the localnet creates, from its settings and the token registry.

Names load on first use (:mod:`xorj_actors._lazy`): ``xorj_actors.config`` imports
``localnet.settings``, and loading a config must not pull in LiteSVM and the servers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xorj_actors._lazy import lazy_exports

if TYPE_CHECKING:
    from xorj_actors.localnet.chain import ChainView
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
    from xorj_actors.localnet.table_admin import TableAdmin

_HOMES = {
    "ChainView": "chain",
    "TOKEN_PROGRAM_ID": "genesis",
    "Genesis": "genesis",
    "TokenSpec": "genesis",
    "VaultSpec": "genesis",
    "apply_genesis": "genesis",
    "build_genesis": "genesis",
    "dev_vault_authority": "genesis",
    "swap_transaction": "genesis",
    "vault_token_account": "genesis",
    "Localnet": "runner",
    "Faults": "server",
    "LocalnetServer": "server",
    "LocalnetSettings": "settings",
    "MarketSettings": "settings",
    "TableAdmin": "table_admin",
}

__all__ = [
    "TOKEN_PROGRAM_ID",
    "ChainView",
    "Faults",
    "Genesis",
    "Localnet",
    "LocalnetServer",
    "LocalnetSettings",
    "MarketSettings",
    "TableAdmin",
    "TokenSpec",
    "VaultSpec",
    "apply_genesis",
    "build_genesis",
    "dev_vault_authority",
    "swap_transaction",
    "vault_token_account",
]


__getattr__ = lazy_exports(__name__, _HOMES)
