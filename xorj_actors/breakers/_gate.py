"""The trade gate: the executor's per-trade decision from the breaker board."""

from __future__ import annotations

from xorj_actors.breakers._board import BreakerBoard
from xorj_actors.breakers._circuit import CircuitState
from xorj_actors.breakers.settings import BreakerName, BreakerSettings

__all__ = ["TradeGate"]


class TradeGate:
    """Decides, per trade, whether the breakers let it go. Owned by one executor; not shared.

    A CLOSED breaker lets everything through. An OPEN breaker, a breaker that is not running (it
    is being restarted, or has never published) blocks. A HALF_OPEN breaker lets through exactly
    ``probes_allowed`` trades per opening (counted here, per breaker and generation), then blocks
    until it closes or reopens. A trade admitted while several breakers are HALF_OPEN is a probe
    for each of them.

    Trades that reduce exposure (``reduces_exposure=True``: flattening a position) pass OPEN and
    HALF_OPEN breakers, except those whose limits say ``blocks_reducing`` (by default the HSM
    and system-error breakers: when signing or the engine itself misbehaves, no trade is safe);
    those treat a reducing trade like any other, probes included. A breaker that is not running
    blocks every trade. The kill switch halts reducing trades like any other; breakers do not.

    Args:
        board: the engine's breaker board.
        settings: the ``[breakers]`` section (for ``blocks_reducing``); default: the defaults.
    """

    __slots__ = ("_board", "_blocks_reducing", "_probes")

    def __init__(self, board: BreakerBoard, settings: BreakerSettings | None = None) -> None:
        settings = BreakerSettings() if settings is None else settings
        self._board = board
        self._blocks_reducing = frozenset(n for n in board.names if settings.limits(n).blocks_reducing)
        #: breaker -> (generation, probes let through in it)
        self._probes: dict[BreakerName, tuple[int, int]] = {}

    def admit(self, reduces_exposure: bool = False) -> str | None:
        """None: the trade may go (a probe is counted if needed); else why not, naming the breaker."""
        snap = self._board.snapshot
        if not snap.blocking:  # the usual case: one attribute read and one test
            return None
        probes: list[tuple[BreakerName, int, int]] = []
        for name in snap.blocking:  # priority order: the reason names the most important one
            status = snap.statuses.get(name)
            if name not in snap.running or status is None:
                return f"breaker {name} is not running"
            if reduces_exposure and name not in self._blocks_reducing:
                continue
            if status.state == CircuitState.OPEN:
                return f"breaker {name} is OPEN: {status.reason}"
            if status.state == CircuitState.HALF_OPEN:
                generation, used = self._probes.get(name, (status.generation, 0))
                if generation != status.generation:
                    used = 0
                if used >= status.probes_allowed:
                    return f"breaker {name} is HALF_OPEN: its {status.probes_allowed} probe trade(s) are out"
                probes.append((name, status.generation, used))
            else:
                return f"breaker {name} is {status.state}"  # an unknown state: refuse
        for name, generation, used in probes:
            self._probes[name] = (generation, used + 1)
        return None
