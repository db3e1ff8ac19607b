"""What the StrategyFeed publishes: immutable snapshots of the ranked traders."""

from __future__ import annotations

from supervisors import Message
from xorj_actors.strategy.settings import RiskProfile

__all__ = ["RankedTrader", "StrategySnapshot", "TargetAllocation", "select_trader"]


class TargetAllocation(Message):
    """A target share of the vault's value in one mint (not an amount)."""

    mint: str
    weight: float


class RankedTrader(Message):
    """One trader as the quantitative engine ranks it; ``allocation`` weights sum to 1."""

    rank: int
    wallet: str
    trust_score: float
    allocation: tuple[TargetAllocation, ...]
    roi: float
    sharpe_ratio: float
    max_drawdown: float
    win_rate: float
    trade_count: int
    period_days: int


def select_trader(traders: tuple[RankedTrader, ...], profile: RiskProfile) -> RankedTrader | None:
    """The best-ranked trader whose trust score is strictly above ``profile.min_trust_score``.

    ``traders`` is in rank order (the validator guarantees it); None when no trader qualifies.
    """
    threshold = profile.min_trust_score
    for trader in traders:
        if trader.trust_score > threshold:
            return trader
    return None


class StrategySnapshot(Message):
    """One accepted response of ``GET /internal/ranked-traders``.

    ``fetched_at`` is the wall-clock time (``time.time()``) the response was received;
    ``traders`` are in rank order, rank 1 first.
    """

    round: int
    scenario: str
    generated_at: str
    fetched_at: float
    traders: tuple[RankedTrader, ...]
    version: str = "1.0"

    def trader_for(self, profile: RiskProfile) -> RankedTrader | None:
        """The trader vaults of ``profile`` copy, or None: they hold."""
        return select_trader(self.traders, profile)
