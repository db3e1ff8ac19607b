"""``[breakers]``: the seven circuit breakers' thresholds, probes and escalation to the kill switch.

One sub-table per breaker (``[breakers.trade_failure_rate]``...). Each breaker has its own
dataclass so that a sub-table giving only some keys keeps that breaker's own defaults for the
others (one shared class would silently fall back to generic numbers).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Literal

__all__ = [
    "BREAKERS",
    "BreakerLimits",
    "BreakerName",
    "BreakerSettings",
    "ConfirmationTimeoutsLimits",
    "EscalationSettings",
    "HsmFailureRateLimits",
    "MarketVolatilityLimits",
    "NetworkConnectivityLimits",
    "SlippageRejectionsLimits",
    "SystemErrorsLimits",
    "TradeFailureRateLimits",
    "VolatilitySettings",
]

class BreakerName(enum.StrEnum):
    """The seven breakers of SR-4, highest priority first (a blocked trade names the first one).

    A ``StrEnum``: config keys, runtime names, metrics labels and the audit log carry the value.
    """

    HSM_FAILURE_RATE = "hsm_failure_rate"
    TRADE_FAILURE_RATE = "trade_failure_rate"
    NETWORK_CONNECTIVITY = "network_connectivity"
    MARKET_VOLATILITY = "market_volatility"
    SLIPPAGE_REJECTIONS = "slippage_rejections"
    SYSTEM_ERRORS = "system_errors"
    CONFIRMATION_TIMEOUTS = "confirmation_timeouts"


#: Every breaker's name, in priority order, as the plain strings messages and config carry.
BREAKERS: tuple[str, ...] = tuple(name.value for name in BreakerName)

_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class BreakerLimits:
    """``[breakers.<name>]``: when one breaker opens and how it closes again.

    A failure counts while it is at most ``window_s`` old (inclusive: a failure exactly
    ``window_s`` ago still counts). The breaker opens when ``max_failures`` count, or after
    ``max_consecutive`` failures with no success between them.
    """

    window_s: float = 600.0
    max_failures: int = 5
    #: 0: no consecutive rule, only the window.
    max_consecutive: int = 0
    #: Time OPEN before HALF_OPEN.
    cool_off_s: float = 300.0
    #: Trades let through in HALF_OPEN; that many successes close the breaker.
    probe_trades: int = 1
    #: HALF_OPEN that has not closed by then reopens (probes lost or never reported).
    probe_timeout_s: float = 300.0
    #: Also refuse trades that reduce exposure (flatten) while not CLOSED.
    blocks_reducing: bool = False

    def validate(self) -> None:
        if not 0 < self.window_s <= _DAY_S:
            raise ValueError("window_s: must be in (0, 86400]")
        if not 1 <= self.max_failures <= 10_000:
            raise ValueError("max_failures: must be between 1 and 10000")
        if not 0 <= self.max_consecutive <= self.max_failures:
            raise ValueError("max_consecutive: must be between 0 (none) and max_failures")
        if not 0 < self.cool_off_s <= _DAY_S:
            raise ValueError("cool_off_s: must be in (0, 86400]")
        if not 1 <= self.probe_trades <= 100:
            raise ValueError("probe_trades: must be between 1 and 100")
        if not 0 < self.probe_timeout_s <= _DAY_S:
            raise ValueError("probe_timeout_s: must be in (0, 86400]")


@dataclass(frozen=True, slots=True)
class HsmFailureRateLimits(BreakerLimits):
    """Signing-key failures: 3 in 10 minutes. Blocks every trade, reducing ones included."""

    window_s: float = 600.0
    max_failures: int = 3
    max_consecutive: int = 0
    cool_off_s: float = 600.0
    probe_trades: int = 1
    blocks_reducing: bool = True


@dataclass(frozen=True, slots=True)
class TradeFailureRateLimits(BreakerLimits):
    """Failed trades: 5 in 10 minutes or 3 consecutive."""

    window_s: float = 600.0
    max_failures: int = 5
    max_consecutive: int = 3
    cool_off_s: float = 300.0
    probe_trades: int = 2


@dataclass(frozen=True, slots=True)
class NetworkConnectivityLimits(BreakerLimits):
    """RPC / PubSub failures: 3 in 5 minutes or 2 consecutive."""

    window_s: float = 300.0
    max_failures: int = 3
    max_consecutive: int = 2
    cool_off_s: float = 60.0
    probe_trades: int = 1


@dataclass(frozen=True, slots=True)
class MarketVolatilityLimits(BreakerLimits):
    """Volatility events (see ``[breakers.volatility]``): 10 in 30 minutes."""

    window_s: float = 1800.0
    max_failures: int = 10
    max_consecutive: int = 0
    cool_off_s: float = 900.0
    probe_trades: int = 1
    probe_timeout_s: float = 900.0


@dataclass(frozen=True, slots=True)
class SlippageRejectionsLimits(BreakerLimits):
    """Quotes refused for slippage: 8 in 15 minutes or 4 consecutive."""

    window_s: float = 900.0
    max_failures: int = 8
    max_consecutive: int = 4
    cool_off_s: float = 300.0
    probe_trades: int = 2


@dataclass(frozen=True, slots=True)
class SystemErrorsLimits(BreakerLimits):
    """Unexpected errors: 10 in 20 minutes or 5 consecutive. Blocks reducing trades too."""

    window_s: float = 1200.0
    max_failures: int = 10
    max_consecutive: int = 5
    cool_off_s: float = 300.0
    probe_trades: int = 1
    blocks_reducing: bool = True


@dataclass(frozen=True, slots=True)
class ConfirmationTimeoutsLimits(BreakerLimits):
    """Transactions not confirmed before their blockhash expired: 5 in 30 minutes or 3 consecutive."""

    window_s: float = 1800.0
    max_failures: int = 5
    max_consecutive: int = 3
    cool_off_s: float = 300.0
    probe_trades: int = 1


Mode = Literal["graceful", "emergency"]


@dataclass(frozen=True, slots=True)
class EscalationSettings:
    """``[breakers.escalation]``: when a breaker trip also halts trading through the kill switch.

    Each rule can be switched off. A trip matching several rules sends one trigger, in the
    harshest of their modes. Nothing is sent while the engine is already halted.
    """

    #: A breaker that trips again within ``retrip_window_s`` after it closed.
    on_retrip: bool = True
    retrip_window_s: float = 3600.0
    retrip_mode: Mode = "graceful"
    #: ``concurrent_open`` breakers not CLOSED at once (OPEN or HALF_OPEN).
    on_concurrent: bool = True
    concurrent_open: int = 2
    concurrent_mode: Mode = "graceful"
    #: Breakers whose every trip escalates (plain names, as the config file gives them).
    on_trip: tuple[str, ...] = (BreakerName.HSM_FAILURE_RATE.value,)
    on_trip_mode: Mode = "emergency"
    #: While the kill switch cannot be reached (restarting), retry the trigger this often.
    retry_s: float = 0.25

    def validate(self) -> None:
        if not 0 < self.retrip_window_s <= 7 * _DAY_S:
            raise ValueError("retrip_window_s: must be in (0, 604800]")
        if not 2 <= self.concurrent_open <= len(BREAKERS):
            raise ValueError(f"concurrent_open: must be between 2 and {len(BREAKERS)}")
        unknown = sorted(set(self.on_trip) - set(BREAKERS))
        if unknown:
            raise ValueError(f"on_trip: unknown breaker(s) {', '.join(unknown)} (known: {', '.join(BREAKERS)})")
        if len(set(self.on_trip)) != len(self.on_trip):
            raise ValueError("on_trip: breakers must be distinct")
        if not 0.01 <= self.retry_s <= 10:
            raise ValueError("retry_s: must be between 0.01 and 10 seconds")


@dataclass(frozen=True, slots=True)
class VolatilitySettings:
    """``[breakers.volatility]``: what one ``market_volatility`` failure event is.

    An event is a move of one token's price by more than ``move_threshold`` (0.5: 50 %),
    relative to any price of that token seen in the last ``move_window_s`` seconds. It is a
    plain move within that window, not an annualised volatility (crypto's annualised volatility
    is routinely above 50 %; a 50 % move within minutes is not).
    """

    move_threshold: float = 0.5
    move_window_s: float = 300.0

    def validate(self) -> None:
        if not 0 < self.move_threshold <= 10:
            raise ValueError("move_threshold: must be in (0, 10]")
        if not 1 <= self.move_window_s <= _DAY_S:
            raise ValueError("move_window_s: must be in [1, 86400]")


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """``[breakers]``: one sub-table per breaker, escalation, and the volatility event definition."""

    hsm_failure_rate: HsmFailureRateLimits = field(default_factory=HsmFailureRateLimits)
    trade_failure_rate: TradeFailureRateLimits = field(default_factory=TradeFailureRateLimits)
    network_connectivity: NetworkConnectivityLimits = field(default_factory=NetworkConnectivityLimits)
    market_volatility: MarketVolatilityLimits = field(default_factory=MarketVolatilityLimits)
    slippage_rejections: SlippageRejectionsLimits = field(default_factory=SlippageRejectionsLimits)
    system_errors: SystemErrorsLimits = field(default_factory=SystemErrorsLimits)
    confirmation_timeouts: ConfirmationTimeoutsLimits = field(default_factory=ConfirmationTimeoutsLimits)
    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    volatility: VolatilitySettings = field(default_factory=VolatilitySettings)

    def validate(self) -> None:
        # The loader validates sub-tables itself; this covers settings built in code.
        for f in fields(self):
            try:
                getattr(self, f.name).validate()
            except ValueError as exc:
                raise ValueError(f"{f.name}.{exc}") from None

    def limits(self, breaker: BreakerName | str) -> BreakerLimits:
        """The limits of ``breaker`` (a member or its value); KeyError for a name not in :data:`BREAKERS`."""
        if breaker not in BREAKERS:
            raise KeyError(f"no breaker {breaker!r} (known: {', '.join(BREAKERS)})")
        limits: BreakerLimits = getattr(self, breaker)
        return limits
