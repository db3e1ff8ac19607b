"""Messages of the risk monitors."""

from __future__ import annotations

from supervisors import Message

__all__ = [
    "CheckClock",
    "ClockSkewStatus",
    "GetClockSkewStatus",
    "GetHeartbeatStatus",
    "GetRiskStatus",
    "HeartbeatStatus",
    "ResetRiskBaseline",
    "RiskStatus",
    "VaultFlow",
    "VaultRemoved",
    "VaultValuation",
]


class VaultValuation(Message):
    """A vault's value after a round, told to the DrawdownMonitor by the vault."""

    vault_id: str
    value_usd: float
    at: float  # time.time()


class VaultRemoved(Message):
    """A vault leaves the portfolio on purpose (closed, migrated): not a loss."""

    vault_id: str
    at: float


class VaultFlow(Message):
    """A deposit (> 0) or withdrawal (< 0) that changed a vault's value: not a gain or a loss.

    Tell it before the valuation that includes it (one sender's messages arrive in order).
    """

    vault_id: str
    amount_usd: float
    at: float


class ResetRiskBaseline(Message):
    """Operators start a new high-water mark and day start at the current value (audited)."""

    operator: str
    reason: str


class GetRiskStatus(Message):
    """Ask the DrawdownMonitor for a :class:`RiskStatus`."""


class RiskStatus(Message):
    """The portfolio as the DrawdownMonitor sees it.

    ``peak_usd`` and ``day_start_usd`` are like for like: today's total scaled back by the
    drawdown and by the daily loss (``total / (1 - drawdown)``), so vaults added or removed
    since, and flows, are neither gains nor losses.
    """

    total_usd: float
    peak_usd: float
    drawdown: float
    daily_loss: float
    vaults: int
    day_start_usd: float = 0.0
    utc_day: str = ""
    drawdown_latched: bool = False
    daily_loss_latched: bool = False
    refused: int = 0
    triggers: int = 0


class GetHeartbeatStatus(Message):
    """Ask the HeartbeatWatchdog for a :class:`HeartbeatStatus`."""


class HeartbeatStatus(Message):
    watched: tuple[str, ...]  # names of live actors matching the essential patterns
    stuck: tuple[str, ...]  # names in a stuck episode
    missing: tuple[str, ...]  # names in a missing episode
    checks: int
    triggers: int


class CheckClock(Message):
    """Run a clock-skew check now (besides the periodic ones); skipped if one is in flight."""


class GetClockSkewStatus(Message):
    """Ask the ClockSkewMonitor for a :class:`ClockSkewStatus`."""


class ClockSkewStatus(Message):
    checks: int  # successful checks
    errors: int  # RPC failures (not skew)
    skew_s: float | None  # system clock - chain block time, last successful check
    slot: int | None
    block_time: int | None
    consecutive: int  # skewed checks in a row
    latched: bool
    triggers: int
    last_error: str | None
    #: [risk] clock_lag_allowance_s, exported for the ahead alert.
    lag_allowance_s: float
