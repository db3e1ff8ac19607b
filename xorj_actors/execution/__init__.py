"""Execution: from a trade request to a signed, sent, confirmed and recorded transaction.

See docs/EXECUTION.md. The Executor is the only actor that sends transactions; the Signer
actors (xorj_actors.signers) sign and the Confirmation actor (xorj_actors.chain) watches.

Names load on first use (:mod:`xorj_actors._lazy`): ``xorj_actors.config`` imports
``execution.settings``, and loading a config must not import the pipeline and its clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xorj_actors._lazy import lazy_exports

if TYPE_CHECKING:
    from xorj_actors.execution._errors import ErrorClass, TradeError, classify_chain_error
    from xorj_actors.execution._crash import CRASH_AT_ENV, CRASH_POINTS
    from xorj_actors.execution._executor import Executor
    from xorj_actors.execution._ledger import LedgerError, load_open_trades, load_vault_trades, lookup_trade
    from xorj_actors.execution._messages import (
        EXECUTOR_NAME,
        AdoptOpenTrades,
        FINAL_STATUSES,
        ExecutorStatus,
        GetExecutorStatus,
        HandOverVaults,
        TradeOutcome,
        TradePhase,
        TradeRequest,
        TradeStatus,
    )
    from xorj_actors.execution._options import ExecutorOptions
    from xorj_actors.execution.settings import ExecutionSettings, RetrySettings, RouteCheckSettings
    from xorj_actors.execution._allowlist import (
        ProgramAllowlist,
        ResolvedMessage,
        RouteParties,
        check_allowlist,
        fee_bound,
        resolve_message,
        tip_lamports,
    )
    from xorj_actors.execution._effects import AccountState, EffectTerms, TokenState, check_effects, decode_account
    from xorj_actors.execution._effects_io import EffectReader, SimulatedEffects
    from xorj_actors.execution._jupiter import DecodedRoute, RouteKind, RouteTerms, check_aggregator, check_route, decode_route
    from xorj_actors.execution._refusal import RouteRefusalReason, RouteRefusal

_HOMES = {
    "ErrorClass": "_errors",
    "TradeError": "_errors",
    "classify_chain_error": "_errors",
    "CRASH_AT_ENV": "_crash",
    "CRASH_POINTS": "_crash",
    "Executor": "_executor",
    "ExecutorOptions": "_options",
    "LedgerError": "_ledger",
    "load_open_trades": "_ledger",
    "load_vault_trades": "_ledger",
    "lookup_trade": "_ledger",
    "AdoptOpenTrades": "_messages",
    "HandOverVaults": "_messages",
    "EXECUTOR_NAME": "_messages",
    "FINAL_STATUSES": "_messages",
    "ExecutorStatus": "_messages",
    "GetExecutorStatus": "_messages",
    "TradeOutcome": "_messages",
    "TradePhase": "_messages",
    "TradeRequest": "_messages",
    "TradeStatus": "_messages",
    "ProgramAllowlist": "_allowlist",
    "ResolvedMessage": "_allowlist",
    "RouteParties": "_allowlist",
    "check_allowlist": "_allowlist",
    "fee_bound": "_allowlist",
    "resolve_message": "_allowlist",
    "tip_lamports": "_allowlist",
    "AccountState": "_effects",
    "EffectTerms": "_effects",
    "TokenState": "_effects",
    "check_effects": "_effects",
    "decode_account": "_effects",
    "EffectReader": "_effects_io",
    "SimulatedEffects": "_effects_io",
    "DecodedRoute": "_jupiter",
    "RouteKind": "_jupiter",
    "RouteTerms": "_jupiter",
    "check_aggregator": "_jupiter",
    "check_route": "_jupiter",
    "decode_route": "_jupiter",
    "RouteRefusalReason": "_refusal",
    "RouteRefusal": "_refusal",
    "ExecutionSettings": "settings",
    "RetrySettings": "settings",
    "RouteCheckSettings": "settings",
}

__all__ = sorted(_HOMES)


__getattr__ = lazy_exports(__name__, _HOMES)
