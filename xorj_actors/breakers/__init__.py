"""Circuit breakers: one actor per breaker.

The seven breakers exist in the tree now; their windows and trip logic come with the decision
issue. Until then each stays CLOSED and takes part in the halt protocol.
"""

from __future__ import annotations

from typing import Any

from supervisors import Message
from xorj_actors.kill_switch import HaltBoard, Participant

__all__ = ["BREAKERS", "Breaker", "BreakerState", "GetBreakerState"]

#: The seven breakers of SR-4, highest priority first.
BREAKERS: tuple[str, ...] = (
    "hsm_failure_rate",
    "trade_failure_rate",
    "network_connectivity",
    "market_volatility",
    "slippage_rejections",
    "system_errors",
    "confirmation_timeouts",
)


class GetBreakerState(Message):
    pass


class BreakerState(Message):
    breaker: str
    state: str  # CLOSED, OPEN, HALF_OPEN


class Breaker(Participant):
    def __init__(self, board: HaltBoard, breaker: str) -> None:
        super().__init__(board)
        self.breaker = breaker
        self.state = "CLOSED"

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetBreakerState):
            return BreakerState(breaker=self.breaker, state=self.state)
        return super().on_receive(message)
