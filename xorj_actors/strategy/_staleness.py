"""The feed's staleness rules, pure: which answer may replace the accepted one, and when it goes stale.

The board itself says whether a snapshot is fresh (``StrategyBoard.fresh``); these decide what the
feed does about it.
"""

from __future__ import annotations

import enum
from datetime import datetime

from xorj_actors.strategy._model import StrategySnapshot

__all__ = ["RoundVerdict", "round_verdict", "stale_check_delay", "utc"]

#: A stale check that fires a hair early (timer vs wall clock) re-arms instead of missing.
_STALE_EPSILON_S = 0.05


class RoundVerdict(enum.StrEnum):
    """How a good answer's round stands against the accepted snapshot's."""

    ACCEPT = "accept"  #: another scenario, or the same round or a later one
    OLD = "old"  #: an earlier round not generated later: a cache or a replay; refused
    RESTARTED = "restarted"  #: an earlier round generated later: the quant engine restarted; accepted


def utc(timestamp: str) -> datetime:
    """A validated ``generatedAt`` as an aware datetime (``Z`` and ``+00:00`` compare equal)."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def round_verdict(snapshot: StrategySnapshot, latest: StrategySnapshot | None) -> RoundVerdict:
    """Whether ``snapshot`` may replace ``latest`` (the board's), by round and ``generatedAt``."""
    if latest is None or snapshot.scenario != latest.scenario or snapshot.round >= latest.round:
        return RoundVerdict.ACCEPT
    if utc(snapshot.generated_at) <= utc(latest.generated_at):
        # An old answer (a cache, a replay) must not replace a newer ranking.
        return RoundVerdict.OLD
    return RoundVerdict.RESTARTED


def stale_check_delay(age: float, stale_after_s: float) -> float:
    """Seconds until a snapshot ``age`` seconds old goes stale (a hair more, never early)."""
    return max(0.0, stale_after_s - age) + _STALE_EPSILON_S
