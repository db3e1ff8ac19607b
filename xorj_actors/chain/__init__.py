"""The chain: the Confirmation actor (WebSocket slot and signature subscriptions, see
docs/CONFIRMATION.md), the RPC gateway (the vaults' batched reads of balances and prices), and
address lookup tables with the v0 messages compiled from them (docs/EXECUTION.md).

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
    from xorj_actors.chain._budget import solana_call
    from xorj_actors.chain._lookup_cache import AccountFetcher, LookupTableCache, RawAccount, rpc_account_fetcher
    from xorj_actors.chain._lookup_tables import (
        ACTIVE_TABLE,
        LOOKUP_TABLE_ERROR_MESSAGES,
        LOOKUP_TABLE_PROGRAM_ID,
        LoadedAddresses,
        LookupTable,
        LookupTableError,
        LookupTableProblem,
        decode_lookup_table,
        encode_lookup_table,
        lookup_table_fault,
        resolve_lookups,
    )
    from xorj_actors.chain._v0 import (
        PACKET_DATA_SIZE,
        CompiledMessage,
        CompileRefusal,
        RefusalReason,
        compile_v0,
        transaction_size,
    )
    from xorj_actors.chain.lookup_settings import LookupTableSettings
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
    "AccountFetcher": "_lookup_cache",
    "LookupTableCache": "_lookup_cache",
    "RawAccount": "_lookup_cache",
    "rpc_account_fetcher": "_lookup_cache",
    "solana_call": "_budget",
    "ACTIVE_TABLE": "_lookup_tables",
    "LOOKUP_TABLE_ERROR_MESSAGES": "_lookup_tables",
    "LOOKUP_TABLE_PROGRAM_ID": "_lookup_tables",
    "LoadedAddresses": "_lookup_tables",
    "LookupTable": "_lookup_tables",
    "LookupTableError": "_lookup_tables",
    "LookupTableProblem": "_lookup_tables",
    "decode_lookup_table": "_lookup_tables",
    "encode_lookup_table": "_lookup_tables",
    "lookup_table_fault": "_lookup_tables",
    "resolve_lookups": "_lookup_tables",
    "PACKET_DATA_SIZE": "_v0",
    "CompiledMessage": "_v0",
    "CompileRefusal": "_v0",
    "RefusalReason": "_v0",
    "compile_v0": "_v0",
    "transaction_size": "_v0",
    "LookupTableSettings": "lookup_settings",
    "DEFAULT_TIERS": "settings",
    "ConfirmationSettings": "settings",
    "Tier": "settings",
    "tier_for": "settings",
}

__all__ = [
    "ACTIVE_TABLE",
    "CONFIRMATION_NAME",
    "DEFAULT_TIERS",
    "GATEWAY_NAME",
    "LOOKUP_TABLE_ERROR_MESSAGES",
    "LOOKUP_TABLE_PROGRAM_ID",
    "PACKET_DATA_SIZE",
    "AccountFetcher",
    "Commitment",
    "CompileRefusal",
    "CompiledMessage",
    "Confirmation",
    "ConfirmationHealth",
    "ConfirmationSettings",
    "GatewaySettings",
    "GetConfirmationHealth",
    "GetVaultSnapshot",
    "GetWatches",
    "LoadedAddresses",
    "LookupTable",
    "LookupTableCache",
    "LookupTableError",
    "LookupTableProblem",
    "LookupTableSettings",
    "OutcomeStatus",
    "RawAccount",
    "RefusalReason",
    "RpcGateway",
    "SignatureOutcome",
    "Tier",
    "Unwatch",
    "VaultSnapshot",
    "WatchRefused",
    "WatchSignature",
    "WatchState",
    "Watches",
    "compile_v0",
    "decode_lookup_table",
    "encode_lookup_table",
    "lookup_table_fault",
    "resolve_lookups",
    "rpc_account_fetcher",
    "solana_call",
    "tier_for",
    "transaction_size",
]


__getattr__ = lazy_exports(__name__, _HOMES)
