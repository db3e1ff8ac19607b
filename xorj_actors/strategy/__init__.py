"""The StrategyFeed: polls the quantitative engine (placeholder until the decision issue)."""

from __future__ import annotations

from xorj_actors.kill_switch import Participant

__all__ = ["StrategyFeed"]


class StrategyFeed(Participant):
    pass
