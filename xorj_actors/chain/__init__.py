"""The chain: the Confirmation actor (WebSocket slot and signature subscriptions, see
docs/CONFIRMATION.md) and the RPC gateway (the vaults' batched reads of balances and prices).
"""

from __future__ import annotations

from xorj_actors.chain._book import Commitment, OutcomeStatus
from xorj_actors.chain._confirmation import Confirmation
from xorj_actors.chain._rpc_gateway import GATEWAY_NAME, GetVaultSnapshot, RpcGateway, VaultSnapshot
from xorj_actors.chain.gateway_settings import GatewaySettings
from xorj_actors.chain._messages import (
    CONFIRMATION_NAME,
    ConfirmationHealth,
    GetConfirmationHealth,
    GetWatches,
    SignatureOutcome,
    Unwatch,
    Watches,
    WatchRefused,
    WatchSignature,
    WatchState,
)
from xorj_actors.chain.prices import parse_prices
from xorj_actors.chain.settings import DEFAULT_TIERS, ConfirmationSettings, Tier, tier_for

__all__ = [
    "CONFIRMATION_NAME",
    "DEFAULT_TIERS",
    "GATEWAY_NAME",
    "Commitment",
    "Confirmation",
    "ConfirmationHealth",
    "ConfirmationSettings",
    "GatewaySettings",
    "GetConfirmationHealth",
    "GetVaultSnapshot",
    "GetWatches",
    "OutcomeStatus",
    "RpcGateway",
    "SignatureOutcome",
    "Tier",
    "Unwatch",
    "VaultSnapshot",
    "WatchRefused",
    "WatchSignature",
    "WatchState",
    "Watches",
    "parse_prices",
    "tier_for",
]
