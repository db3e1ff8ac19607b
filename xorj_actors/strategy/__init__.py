"""The StrategyFeed: polls the quantitative engine's ranked traders and publishes them for vaults.

See docs/STRATEGY.md (validation, risk profiles, staleness) and docs/QUANT_API.md (the schema).
"""

from __future__ import annotations

from xorj_actors.strategy._board import StrategyBoard, Target
from xorj_actors.strategy._client import API_KEY_HEADER, RANKED_TRADERS_PATH, StrategyFeedError
from xorj_actors.strategy._feed import (
    STRATEGY_FEED_NAME,
    GetStrategyStatus,
    RefreshStrategy,
    StrategyFeed,
    StrategyStatus,
)
from xorj_actors.strategy._model import RankedTrader, StrategySnapshot, TargetAllocation, select_trader
from xorj_actors.strategy._validate import (
    SUPPORTED_MAJOR_VERSIONS,
    InvalidStrategyData,
    parse_ranked_traders,
    strict_json,
)
from xorj_actors.strategy.settings import DEFAULT_PROFILES, RiskProfile, StrategySettings

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_PROFILES",
    "RANKED_TRADERS_PATH",
    "STRATEGY_FEED_NAME",
    "SUPPORTED_MAJOR_VERSIONS",
    "GetStrategyStatus",
    "InvalidStrategyData",
    "RankedTrader",
    "RefreshStrategy",
    "RiskProfile",
    "StrategyBoard",
    "StrategyFeed",
    "StrategyFeedError",
    "StrategySettings",
    "StrategySnapshot",
    "StrategyStatus",
    "Target",
    "TargetAllocation",
    "parse_ranked_traders",
    "select_trader",
    "strict_json",
]
