"""Vaults: one actor per user vault, the reconciliation that plans its trades, slippage measured after a trade.

See docs/RECONCILIATION.md. Names load on first use (:mod:`xorj_actors._lazy`):
``xorj_actors.config`` imports ``vaults.settings``, and loading a config must not import the
actor and the executor behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xorj_actors._lazy import lazy_exports

if TYPE_CHECKING:
    from xorj_actors.vaults._admin import (
        MAX_VAULT_INDEX, MAX_VAULTS_PER_ADD, VAULT_ID, VaultAdmin, VaultAdminError, VaultRemoval, VaultsAdded, new_vault_indices,
    )
    from xorj_actors.vaults._reconcile import PLAN_REFUSALS, PlannedTrade, SkipReason, Skipped, TradePlan, plan_trades
    from xorj_actors.vaults._flatten import FLATTEN_PASSES
    from xorj_actors.vaults._messages import FlattenPhase, GetVaultStatus, Round, RoundResult, VaultPhase, VaultStatus
    from xorj_actors.vaults._slippage import SwapLeg, executed_deviation_bps, realised_slippage
    from xorj_actors.vaults._vault import Vault
    from xorj_actors.vaults.settings import VaultSettings

_HOMES = {
    **dict.fromkeys(("MAX_VAULT_INDEX", "MAX_VAULTS_PER_ADD", "VAULT_ID", "VaultAdmin", "VaultAdminError", "VaultRemoval", "VaultsAdded",
                      "new_vault_indices"), "_admin"),  # noqa: E501
    "PLAN_REFUSALS": "_reconcile",
    "PlannedTrade": "_reconcile",
    "SkipReason": "_reconcile",
    "Skipped": "_reconcile",
    "TradePlan": "_reconcile",
    "plan_trades": "_reconcile",
    "SwapLeg": "_slippage",
    "executed_deviation_bps": "_slippage",
    "realised_slippage": "_slippage",
    "FLATTEN_PASSES": "_flatten",
    "FlattenPhase": "_messages",
    "GetVaultStatus": "_messages",
    "Round": "_messages",
    "RoundResult": "_messages",
    "VaultPhase": "_messages",
    "VaultStatus": "_messages",
    "Vault": "_vault",
    "VaultSettings": "settings",
}

__all__ = sorted(_HOMES)


__getattr__ = lazy_exports(__name__, _HOMES)
