"""The correlation estimator: fed by the price watch, publishes a snapshot every ``refresh_s``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from xorj_actors.correlation._board import ExposureBoard
from xorj_actors.correlation._estimate import CorrelationSnapshot, PriceHistory, estimate

__all__ = ["CorrelationEstimator"]


class CorrelationEstimator:
    """Not an actor: the price monitor owns it and feeds it the ticks it samples anyway (the
    volatility breaker's), so the estimate costs no request of the price budget."""

    def __init__(self, board: ExposureBoard, mints: tuple[str, ...], wall: Callable[[], float] = time.time) -> None:
        self.board = board
        self.mints = tuple(sorted(set(mints)))
        self.history = PriceHistory(board.settings.window_s)
        self.wall = wall
        self._last: float | None = None

    def observe(self, prices: Mapping[str, float], now: float) -> CorrelationSnapshot | None:
        """One tick (``now``: monotonic seconds); the new snapshot when one was due, else None."""
        self.history.add({m: prices[m] for m in self.mints if m in prices}, now)
        s = self.board.settings
        if self._last is not None and now - self._last < s.refresh_s:
            return None
        self._last = now
        snap = estimate(
            self.history,
            self.mints,
            min_samples=s.min_samples,
            threshold=s.threshold,
            unknown_correlated=s.unknown_correlated,
            as_of=self.wall(),
        )
        self.board.publish(snap)
        return snap
