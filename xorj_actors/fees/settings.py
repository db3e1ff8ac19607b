"""``[execution.fees]``: how a transaction's compute-unit price is chosen and how it rises on retry.

A trade's USD value selects a tier (``[[execution.fees.tiers]]``), as it selects a confirmation
tier: the percentile of recent per-slot fees (provider ``rpc``) or the Helius priority level
(provider ``estimate``) that prices it. Each new attempt after a certain expiry multiplies the
price by ``escalation``, never above ``cap_micro_lamports``. See docs/FEES.md.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from xorj_actors._settings import validate_value_tiers

__all__ = ["DEFAULT_FEE_TIERS", "FeeProvider", "FeeSettings", "FeeTier", "PriorityLevel"]

#: Agave's limit on the accounts of one getRecentPrioritizationFees.
MAX_FEE_ACCOUNTS = 128
#: A price past this (0.1 SOL per million units, in micro-lamports per unit) is a typo.
_MAX_CAP = 100_000_000


class FeeProvider(enum.Enum):
    """Where the base price comes from."""

    #: ``getRecentPrioritizationFees`` over the writable accounts, at the tier's percentile.
    RPC = "rpc"
    #: Helius-style ``getPriorityFeeEstimate`` over the writable accounts, at the tier's level.
    ESTIMATE = "estimate"


class PriorityLevel(enum.Enum):
    """Helius' priority levels (the value is the request's spelling)."""

    MIN = "Min"
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"
    VERY_HIGH = "VeryHigh"
    UNSAFE_MAX = "UnsafeMax"

    @property
    def key(self) -> str:
        """The level's key in ``priorityFeeLevels`` (``"veryHigh"``)."""
        return self.value[0].lower() + self.value[1:]

    @property
    def percentile(self) -> int:
        """The percentile Helius documents for the level (Min 0 ... UnsafeMax 100)."""
        return _LEVEL_PERCENTILES[self]


_LEVEL_PERCENTILES = {
    PriorityLevel.MIN: 0,
    PriorityLevel.LOW: 25,
    PriorityLevel.MEDIUM: 50,
    PriorityLevel.HIGH: 75,
    PriorityLevel.VERY_HIGH: 95,
    PriorityLevel.UNSAFE_MAX: 100,
}


@dataclass(frozen=True, slots=True)
class FeeTier:
    """``[[execution.fees.tiers]]``: how a trade worth at least ``min_value_usd`` is priced."""

    #: Lower bound (inclusive) of the trade's USD value for this tier.
    min_value_usd: float
    #: Provider ``rpc``: this percentile (0-100) of the recent per-slot fees.
    percentile: int
    #: Provider ``estimate``: this Helius level.
    level: PriorityLevel = PriorityLevel.MEDIUM

    def validate(self) -> None:
        if not math.isfinite(self.min_value_usd) or self.min_value_usd < 0:
            raise ValueError("min_value_usd: must be a finite number >= 0")
        if not 0 <= self.percentile <= 100:
            raise ValueError("percentile: must be between 0 and 100")


#: Larger trades pay more to land sooner; the lowest value first.
DEFAULT_FEE_TIERS: tuple[FeeTier, ...] = (
    FeeTier(min_value_usd=0.0, percentile=50, level=PriorityLevel.MEDIUM),
    FeeTier(min_value_usd=1_000.0, percentile=75, level=PriorityLevel.HIGH),
    FeeTier(min_value_usd=10_000.0, percentile=90, level=PriorityLevel.VERY_HIGH),
)


@dataclass(frozen=True, slots=True)
class FeeSettings:
    """``[execution.fees]``: priority fees scoped to the accounts a transaction writes."""

    provider: FeeProvider = FeeProvider.RPC
    #: JSON-RPC URL of the estimate provider (``estimate``); empty: the execution RPC.
    estimate_url: str = ""
    #: Value tiers, lowest ``min_value_usd`` first; the first must be 0.
    tiers: tuple[FeeTier, ...] = DEFAULT_FEE_TIERS
    #: No attempt pays more than this many micro-lamports per compute unit.
    cap_micro_lamports: int = 1_000_000
    #: Each new attempt after a certain expiry pays this factor times the previous attempt.
    escalation: float = 1.5
    #: A retry whose base is below this escalates from this (a zero base would stay zero).
    escalation_floor_micro_lamports: int = 1_000
    #: An answer for one set of writable accounts is reused this long (a burst on one pool asks once).
    cache_s: float = 2.0
    #: Entries the answer cache holds; past it the oldest is dropped.
    cache_entries: int = 1_024
    #: One fee request gives up after this long.
    timeout_s: float = 5.0

    def validate(self) -> None:
        validate_value_tiers(self.tiers)
        for low, high in zip(self.tiers, self.tiers[1:]):
            # A larger trade bidding less than a smaller one is a configuration mistake.
            if high.percentile < low.percentile or high.level.percentile < low.level.percentile:
                raise ValueError("tiers: percentile and level must not decrease as min_value_usd grows")
        if not 0 < self.cap_micro_lamports <= _MAX_CAP:
            raise ValueError(f"cap_micro_lamports: must be between 1 and {_MAX_CAP}")
        if not math.isfinite(self.escalation) or not 1.0 <= self.escalation <= 10.0:
            raise ValueError("escalation: must be between 1 and 10")
        if not 0 <= self.escalation_floor_micro_lamports <= self.cap_micro_lamports:
            raise ValueError("escalation_floor_micro_lamports: must be between 0 and cap_micro_lamports")
        if not math.isfinite(self.cache_s) or not 0 <= self.cache_s <= 60:
            raise ValueError("cache_s: must be between 0 and 60 seconds")
        if not 1 <= self.cache_entries <= 1_000_000:
            raise ValueError("cache_entries: must be between 1 and 1000000")
        if not math.isfinite(self.timeout_s) or not 0 < self.timeout_s <= 60:
            raise ValueError("timeout_s: must be in (0, 60]")
        if self.estimate_url and not self.estimate_url.startswith(("http://", "https://")):
            raise ValueError("estimate_url: must be an http(s) URL")
