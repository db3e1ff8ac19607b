"""Vaults: one actor per user vault, the reconciliation that plans its trades, slippage control.

See docs/RECONCILIATION.md.
"""

from __future__ import annotations

from xorj_actors.vaults._admin import MAX_VAULT_INDEX, MAX_VAULTS_PER_ADD, VAULT_ID, VaultAdmin, VaultAdminError, VaultRemoval, VaultsAdded
from xorj_actors.vaults._reconcile import PLAN_REFUSALS, PlannedTrade, SkipReason, Skipped, TradePlan, plan_trades
from xorj_actors.vaults._flatten import FLATTEN_PASSES
from xorj_actors.vaults._messages import FlattenPhase, GetVaultStatus, Round, RoundResult, VaultPhase, VaultStatus
from xorj_actors.vaults._slippage import (
    QUOTE_REFUSALS,
    QuoteCheck,
    SwapLeg,
    check_quote,
    executed_deviation_bps,
    realised_slippage,
)
from xorj_actors.vaults._vault import Vault
from xorj_actors.vaults.settings import VaultSettings

__all__ = [
    "FLATTEN_PASSES",
    "FlattenPhase",
    "GetVaultStatus",
    "MAX_VAULTS_PER_ADD",
    "MAX_VAULT_INDEX",
    "PLAN_REFUSALS",
    "PlannedTrade",
    "QUOTE_REFUSALS",
    "QuoteCheck",
    "Round",
    "RoundResult",
    "SkipReason",
    "Skipped",
    "SwapLeg",
    "TradePlan",
    "VAULT_ID",
    "Vault",
    "VaultAdmin",
    "VaultAdminError",
    "VaultPhase",
    "VaultRemoval",
    "VaultSettings",
    "VaultStatus",
    "VaultsAdded",
    "check_quote",
    "executed_deviation_bps",
    "plan_trades",
    "realised_slippage",
]
