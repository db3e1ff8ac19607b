"""The automatic kill-switch triggers: drawdown and daily loss, heartbeats, clock skew.

Three monitors, each a Participant on a thread of its own that keeps watching through a halt and
only ever adds triggers (source ``risk:<monitor>``), audited with the figures that fired them.
See docs/RISK.md.
"""

from __future__ import annotations

from xorj_actors.risk._chain_time import ChainTime, RpcFailure, read_chain_time
from xorj_actors.risk._clock import CLOCK_SKEW_NAME, ClockSkewMonitor, report_network_failure
from xorj_actors.risk._drawdown import DRAWDOWN_NAME, DrawdownMonitor, report_valuation
from xorj_actors.risk._heartbeat import HEARTBEAT_NAME, ForgetEssential, HeartbeatWatchdog
from xorj_actors.risk._messages import (
    CheckClock,
    ClockSkewStatus,
    GetClockSkewStatus,
    GetHeartbeatStatus,
    GetRiskStatus,
    HeartbeatStatus,
    ResetRiskBaseline,
    RiskStatus,
    VaultFlow,
    VaultRemoved,
    VaultValuation,
)
from xorj_actors.risk._monitor import RiskMonitor
from xorj_actors.risk.settings import DEFAULT_ESSENTIAL_ACTORS, RiskSettings

__all__ = [
    "CLOCK_SKEW_NAME",
    "DEFAULT_ESSENTIAL_ACTORS",
    "DRAWDOWN_NAME",
    "HEARTBEAT_NAME",
    "ChainTime",
    "CheckClock",
    "ClockSkewMonitor",
    "ClockSkewStatus",
    "DrawdownMonitor",
    "ForgetEssential",
    "GetClockSkewStatus",
    "GetHeartbeatStatus",
    "GetRiskStatus",
    "HeartbeatStatus",
    "HeartbeatWatchdog",
    "ResetRiskBaseline",
    "RpcFailure",
    "RiskMonitor",
    "RiskSettings",
    "RiskStatus",
    "VaultFlow",
    "VaultRemoved",
    "VaultValuation",
    "read_chain_time",
    "report_network_failure",
    "report_valuation",
]
