"""The chain: the Confirmation actor (WebSocket slot and signature subscriptions, see
docs/CONFIRMATION.md) and the RPC gateway (the vaults' batched reads of balances and prices).

Names load on first use (:mod:`xorj_actors._lazy`): ``xorj_actors.config`` imports
``chain.settings``, and loading a config must not pull in the actors and the WebSocket client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xorj_actors._lazy import lazy_exports

if TYPE_CHECKING:
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

_HOMES = {
    "Commitment": "_book",
    "OutcomeStatus": "_book",
    "CONFIRMATION_NAME": "_messages",
    "Confirmation": "_confirmation",
    "RpcGateway": "_rpc_gateway",
    "GATEWAY_NAME": "_rpc_gateway",
    "GetVaultSnapshot": "_rpc_gateway",
    "VaultSnapshot": "_rpc_gateway",
    "GatewaySettings": "gateway_settings",
    "ConfirmationHealth": "_messages",
    "GetConfirmationHealth": "_messages",
    "GetWatches": "_messages",
    "SignatureOutcome": "_messages",
    "Unwatch": "_messages",
    "Watches": "_messages",
    "WatchRefused": "_messages",
    "WatchSignature": "_messages",
    "WatchState": "_messages",
    "parse_prices": "prices",
    "DEFAULT_TIERS": "settings",
    "ConfirmationSettings": "settings",
    "Tier": "settings",
    "tier_for": "settings",
}

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


__getattr__ = lazy_exports(__name__, _HOMES)
