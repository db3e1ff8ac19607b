"""``[risk]``: the automatic kill-switch triggers (drawdown, daily loss, heartbeat, clock skew)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_ESSENTIAL_ACTORS", "RiskSettings"]

#: Actors whose silence or absence halts trading; ``*`` and ``?`` match as in shell patterns.
DEFAULT_ESSENTIAL_ACTORS: tuple[str, ...] = (
    "audit",
    "kill_switch",
    "signer:*",
    "confirmation",
    "executor",
    "strategy_feed",
)

_PATTERN = re.compile(r"^[A-Za-z0-9_:.*?\[\]-]{1,128}$")

Mode = Literal["graceful", "emergency"]


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number")


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """``[risk]``: thresholds, check cadences and halt modes of the three risk monitors.

    Fractions are of the portfolio (0.15 is 15 %). Modes are ``"graceful"`` or ``"emergency"``
    (see docs/HALT_PROTOCOL.md).
    """

    # -- DrawdownMonitor -----------------------------------------------------------------------
    drawdown_enabled: bool = True
    #: Halt when the portfolio is this far below its peak (like-for-like, see docs/RISK.md).
    max_drawdown: float = 0.15
    #: Halt when the portfolio is this far below its value at the start of the UTC day.
    max_daily_loss: float = 0.10
    #: An episode ends (and the trigger re-arms) once the figure is below threshold - margin.
    rearm_margin: float = 0.01
    #: Within an episode, trigger again each time the figure worsens by this much more.
    escalation_step: float = 0.05
    #: Losses may be the engine's own doing: drop queued unsigned work (EMERGENCY).
    drawdown_mode: Mode = "emergency"
    daily_loss_mode: Mode = "emergency"
    #: Peak, day start, episodes and each vault's last value, relative to the data directory, so
    #: that a restart (of the actor or the process) neither forgets a loss nor restarts the day.
    #: Empty: nothing is kept (tests only: a restart then starts a new high-water mark).
    drawdown_state_file: str = "risk_drawdown.json"
    #: The state file is rewritten at most this often (and at once when a trigger fires).
    drawdown_persist_interval_s: float = 5.0

    # -- HeartbeatWatchdog ---------------------------------------------------------------------
    heartbeat_enabled: bool = True
    essential_actors: tuple[str, ...] = DEFAULT_ESSENTIAL_ACTORS
    heartbeat_interval_s: float = 2.0
    #: An essential actor with work that makes no progress, or that is missing, for this long.
    heartbeat_timeout_s: float = 10.0
    heartbeat_mode: Mode = "graceful"

    # -- ClockSkewMonitor ----------------------------------------------------------------------
    clock_skew_enabled: bool = True
    clock_check_interval_s: float = 15.0
    #: |system clock - chain block time| beyond this is skew.
    max_clock_skew_s: float = 30.0
    #: Skewed checks in a row (RPC errors neither count nor break the run) before a trigger.
    clock_skew_consecutive: int = 3
    #: Commitment of the slot whose block time is read (processed blocks may have none yet).
    clock_commitment: Literal["confirmed", "finalized"] = "confirmed"
    #: Timeout of each of the two JSON-RPC requests of a check.
    clock_rpc_timeout_s: float = 5.0
    clock_skew_mode: Mode = "graceful"
    #: The most a check's reading may owe to the time from block production to the answer at
    #: ``clock_commitment`` (0.4-1 s on mainnet at ``confirmed``). Not used by the monitor: it is
    #: exported (``xorj_clock_lag_allowance_seconds``) for the ahead alert to subtract.
    clock_lag_allowance_s: float = 0.0

    # -- delivery ------------------------------------------------------------------------------
    #: While the kill switch cannot be reached, retry an undelivered trigger this often.
    trigger_retry_s: float = 0.5

    def validate(self) -> None:
        for name in ("max_drawdown", "max_daily_loss"):
            value = getattr(self, name)
            _finite(name, value)
            if not 0 < value < 1:
                raise ValueError(f"{name}: must be a fraction in (0, 1), e.g. 0.15 for 15 %")
        _finite("rearm_margin", self.rearm_margin)
        if not 0 <= self.rearm_margin < min(self.max_drawdown, self.max_daily_loss):
            raise ValueError("rearm_margin: must be >= 0 and below both max_drawdown and max_daily_loss")
        _finite("escalation_step", self.escalation_step)
        if not 0 < self.escalation_step <= 1:
            raise ValueError("escalation_step: must be in (0, 1]")
        path = self.drawdown_state_file
        if path and (path.startswith("/") or ".." in path.split("/")):
            raise ValueError("drawdown_state_file: must be a relative path inside the data directory (or empty)")
        _finite("drawdown_persist_interval_s", self.drawdown_persist_interval_s)
        if not 0.1 <= self.drawdown_persist_interval_s <= 300:
            raise ValueError("drawdown_persist_interval_s: must be between 0.1 and 300 seconds")
        if not self.essential_actors:
            raise ValueError("essential_actors: name at least one actor (or set heartbeat_enabled = false)")
        for pattern in self.essential_actors:
            if not _PATTERN.match(pattern):
                raise ValueError(f"essential_actors: {pattern!r} is not an actor name or pattern")
        if len(set(self.essential_actors)) != len(self.essential_actors):
            raise ValueError("essential_actors: names must be distinct")
        _finite("heartbeat_interval_s", self.heartbeat_interval_s)
        _finite("heartbeat_timeout_s", self.heartbeat_timeout_s)
        if not 0.01 <= self.heartbeat_interval_s <= 60:
            raise ValueError("heartbeat_interval_s: must be between 0.01 and 60 seconds")
        if not self.heartbeat_interval_s < self.heartbeat_timeout_s <= 3600:
            raise ValueError("heartbeat_timeout_s: must be above heartbeat_interval_s and at most 3600 seconds")
        _finite("clock_check_interval_s", self.clock_check_interval_s)
        _finite("max_clock_skew_s", self.max_clock_skew_s)
        _finite("clock_rpc_timeout_s", self.clock_rpc_timeout_s)
        if not 0.01 <= self.clock_check_interval_s <= 3600:
            raise ValueError("clock_check_interval_s: must be between 0.01 and 3600 seconds")
        if not 1 <= self.max_clock_skew_s <= 3600:
            raise ValueError("max_clock_skew_s: must be between 1 and 3600 seconds")
        if not 1 <= self.clock_skew_consecutive <= 100:
            raise ValueError("clock_skew_consecutive: must be between 1 and 100")
        if not 0 < self.clock_rpc_timeout_s <= 60:
            raise ValueError("clock_rpc_timeout_s: must be in (0, 60] seconds")
        _finite("clock_lag_allowance_s", self.clock_lag_allowance_s)
        if not 0 <= self.clock_lag_allowance_s <= 10:
            raise ValueError("clock_lag_allowance_s: must be between 0 and 10 seconds")
        for name in ("drawdown_mode", "daily_loss_mode", "heartbeat_mode", "clock_skew_mode"):
            if getattr(self, name) not in ("graceful", "emergency"):
                raise ValueError(f"{name}: must be 'graceful' or 'emergency'")
        if self.clock_commitment not in ("confirmed", "finalized"):
            raise ValueError("clock_commitment: must be 'confirmed' or 'finalized'")
        _finite("trigger_retry_s", self.trigger_retry_s)
        if not 0.01 <= self.trigger_retry_s <= 10:
            raise ValueError("trigger_retry_s: must be between 0.01 and 10 seconds")
