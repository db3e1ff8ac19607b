"""The strategy board: the latest good ranking, readable by every vault at once.

Like the halt board: only the StrategyFeed writes it; readers get an immutable
:class:`StrategySnapshot` (a single attribute read is atomic), never a half-updated one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from supervisors import Message
from xorj_actors.strategy._model import RankedTrader, StrategySnapshot
from xorj_actors.strategy.settings import RiskProfile

__all__ = ["StrategyBoard", "Target"]


class Target(Message):
    """What a vault of one profile should copy now: a trader, or None and why it holds."""

    trader: RankedTrader | None
    reason: str  # "" when there is a trader
    round: int | None  # the snapshot's round, None before the first good response
    #: False before the first good response and once the board is stale (vaults say so).
    fresh: bool


class StrategyBoard:
    """Holds the latest accepted :class:`StrategySnapshot`.

    Args:
        stale_after_s: with no good response for this long the board is not :meth:`fresh`
            (``[strategy] stale_after_s``; the feed refuses a board that disagrees).
        clock: wall-clock seconds, ``time.time`` (injectable for tests).
    """

    __slots__ = ("_clock", "_feed_started_at", "_latest", "stale_after_s")

    def __init__(self, stale_after_s: float = 900.0, *, clock: Callable[[], float] = time.time) -> None:
        if not math.isfinite(stale_after_s) or stale_after_s <= 0:
            raise ValueError(f"stale_after_s: must be > 0, got {stale_after_s!r}")
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._latest: StrategySnapshot | None = None
        self._feed_started_at: float | None = None

    @property
    def latest(self) -> StrategySnapshot | None:
        """The last good snapshot (kept through rejections and staleness), or None."""
        return self._latest

    def feed_started(self, now: float) -> float:
        """When the first feed of this board started (``now``, at the first call): a feed that
        restarts without ever getting a good response still ages from then, and goes stale."""
        if self._feed_started_at is None:
            self._feed_started_at = now
        return self._feed_started_at

    def publish(self, snapshot: StrategySnapshot) -> None:
        """The feed's only write: a newly accepted response."""
        self._latest = snapshot

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the last good response, or None if there was none."""
        latest = self._latest
        if latest is None:
            return None
        return (self._clock() if now is None else now) - latest.fetched_at

    def fresh(self, now: float | None = None) -> bool:
        """False before the first good response and once none came for ``stale_after_s``.

        A stale board stops new trades (vaults check it); it does not halt the engine.
        """
        age = self.age(now)
        return age is not None and age < self.stale_after_s

    def target_for(self, profile: RiskProfile, now: float | None = None) -> Target:
        """The trader vaults of ``profile`` may copy now, or None with the reason they hold.

        The one question a vault asks before a round, answered from a single read of the board
        (freshness and trader come from the same snapshot, however often the feed publishes).
        In this order: no snapshot yet; a stale one (the rule of :meth:`fresh`: stale from
        exactly ``stale_after_s``); no trader of the snapshot above ``profile``'s
        ``min_trust_score`` (:meth:`StrategySnapshot.trader_for`). Otherwise the highest-ranked
        trader above it.

        Args:
            profile: the vault's risk profile.
            now: wall-clock seconds (default: the board's clock).

        Returns:
            A :class:`Target`: ``trader`` set and ``reason`` empty, or ``trader`` None and why;
            ``round`` is the snapshot's round (None before the first good response).
        """
        latest = self._latest  # one read: the checks below see one snapshot
        if latest is None:
            return Target(
                trader=None, reason="no strategy yet: no good response from the quant engine", round=None, fresh=False
            )
        age = (self._clock() if now is None else now) - latest.fetched_at
        if not age < self.stale_after_s:
            return Target(
                trader=None,
                reason=f"strategy stale: last good response {age:.0f} s ago (limit {self.stale_after_s:g} s)",
                round=latest.round,
                fresh=False,
            )
        trader = latest.trader_for(profile)
        if trader is None:
            return Target(
                trader=None,
                reason=f"no trader with trust score above {profile.min_trust_score:g} "
                f"for profile {profile.name} in round {latest.round}",
                round=latest.round,
                fresh=True,
            )
        return Target(trader=trader, reason="", round=latest.round, fresh=True)
