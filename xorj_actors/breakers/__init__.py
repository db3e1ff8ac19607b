"""Circuit breakers (SR-4): one actor per breaker, a board they publish on, the executor's gate.

Reporters call :func:`report`; each :class:`Breaker` (named by a :class:`BreakerName`) counts,
opens, cools off, probes and closes by the pure rule of its :class:`Circuit` (states:
:class:`CircuitState`), publishing :class:`BreakerStatus` on the :class:`BreakerBoard`; the
executor asks its own :class:`TradeGate` before every trade; some trips escalate to the kill
switch. docs/BREAKERS.md.
"""

from __future__ import annotations

from xorj_actors.breakers._actor import (
    Breaker,
    BreakerEvent,
    GetBreakerStatus,
    breaker_name,
    report,
)
from xorj_actors.breakers._board import BoardSnapshot, BreakerBoard, BreakerStatus, StaleClaim
from xorj_actors.breakers._circuit import Circuit, CircuitState, Recorded, Transition
from xorj_actors.breakers._gate import TradeGate
from xorj_actors.breakers._table import breaker_table, render_breakers
from xorj_actors.breakers._volatility import VolatilityDetector
from xorj_actors.breakers.settings import (
    BREAKERS,
    BreakerLimits,
    BreakerName,
    BreakerSettings,
    EscalationSettings,
    VolatilitySettings,
)

__all__ = [
    "BREAKERS",
    "BoardSnapshot",
    "Breaker",
    "BreakerBoard",
    "BreakerEvent",
    "BreakerLimits",
    "BreakerName",
    "BreakerSettings",
    "BreakerStatus",
    "Circuit",
    "CircuitState",
    "EscalationSettings",
    "GetBreakerStatus",
    "Recorded",
    "StaleClaim",
    "TradeGate",
    "Transition",
    "VolatilityDetector",
    "VolatilitySettings",
    "breaker_name",
    "breaker_table",
    "render_breakers",
    "report",
]
