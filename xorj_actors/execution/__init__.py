"""Execution: from a trade request to a signed, sent, confirmed and recorded transaction.

See docs/EXECUTION.md. The Executor is the only actor that sends transactions; the Signer
actors (xorj_actors.signers) sign and the Confirmation actor (xorj_actors.chain) watches.
"""

from __future__ import annotations

from xorj_actors.execution._errors import ErrorClass, TradeError, classify_chain_error
from xorj_actors.execution._crash import CRASH_AT_ENV, CRASH_POINTS
from xorj_actors.execution._executor import Executor
from xorj_actors.execution._ledger import LedgerError, load_open_trades, lookup_trade
from xorj_actors.execution._messages import (
    EXECUTOR_NAME,
    FINAL_STATUSES,
    ExecutorStatus,
    GetExecutorStatus,
    TradeOutcome,
    TradePhase,
    TradeRequest,
    TradeStatus,
)
from xorj_actors.execution._options import ExecutorOptions, QuoteCheck
from xorj_actors.execution.settings import ExecutionSettings, RetrySettings

__all__ = [
    "CRASH_AT_ENV",
    "CRASH_POINTS",
    "EXECUTOR_NAME",
    "ErrorClass",
    "ExecutionSettings",
    "Executor",
    "ExecutorOptions",
    "ExecutorStatus",
    "FINAL_STATUSES",
    "GetExecutorStatus",
    "LedgerError",
    "QuoteCheck",
    "RetrySettings",
    "TradeError",
    "TradeOutcome",
    "TradePhase",
    "TradeRequest",
    "TradeStatus",
    "classify_chain_error",
    "load_open_trades",
    "lookup_trade",
]
