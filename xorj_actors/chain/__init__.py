"""The chain: the Confirmation actor (WebSocket slot and signature subscriptions, see
docs/CONFIRMATION.md) and the RPC gateway (the vaults' batched reads of balances and prices).

Names load on first use: ``xorj_actors.config`` imports ``chain.settings``, and loading a config
must not pull in the actor, the WebSocket client and the ops package (which imports the config).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xorj_actors._lazy import lazy_exports

if TYPE_CHECKING:
    from xorj_actors.chain._confirmation import CONFIRMATION_NAME, Confirmation
    from xorj_actors.chain._rpc_gateway import GATEWAY_NAME, GetVaultSnapshot, RpcGateway, VaultSnapshot
    from xorj_actors.chain.gateway_settings import GatewaySettings
    from xorj_actors.chain._messages import (
        OUTCOME_STATUSES,
        ConfirmationHealth,
        GetConfirmationHealth,
        SignatureOutcome,
        Unwatch,
        WatchRefused,
        WatchSignature,
    )
    from xorj_actors.chain._session import NETWORK_BREAKER
    from xorj_actors.chain.prices import parse_prices
    from xorj_actors.chain.settings import DEFAULT_TIERS, ConfirmationSettings, Tier, tier_for

_HOMES = {
    "CONFIRMATION_NAME": "_confirmation",
    "Confirmation": "_confirmation",
    "RpcGateway": "_rpc_gateway",
    "GATEWAY_NAME": "_rpc_gateway",
    "GetVaultSnapshot": "_rpc_gateway",
    "VaultSnapshot": "_rpc_gateway",
    "GatewaySettings": "gateway_settings",
    "OUTCOME_STATUSES": "_messages",
    "ConfirmationHealth": "_messages",
    "GetConfirmationHealth": "_messages",
    "SignatureOutcome": "_messages",
    "Unwatch": "_messages",
    "WatchRefused": "_messages",
    "WatchSignature": "_messages",
    "NETWORK_BREAKER": "_session",
    "parse_prices": "prices",
    "DEFAULT_TIERS": "settings",
    "ConfirmationSettings": "settings",
    "Tier": "settings",
    "tier_for": "settings",
}

__all__ = [
    "CONFIRMATION_NAME",
    "DEFAULT_TIERS",
    "NETWORK_BREAKER",
    "OUTCOME_STATUSES",
    "Confirmation",
    "ConfirmationHealth",
    "ConfirmationSettings",
    "GetConfirmationHealth",
    "RpcGateway",
    "GATEWAY_NAME",
    "GatewaySettings",
    "GetVaultSnapshot",
    "VaultSnapshot",
    "SignatureOutcome",
    "Tier",
    "Unwatch",
    "WatchRefused",
    "WatchSignature",
    "parse_prices",
    "tier_for",
]


__getattr__ = lazy_exports(__name__, _HOMES)
