"""Priority fees scoped to the accounts a transaction writes, and their escalation on retry.

:class:`FeePolicy` (pure) picks a value tier, reads the tier's base price from a
:class:`FeeSample` and escalates it per attempt up to the cap; :class:`FeeClient` fetches the
sample from ``getRecentPrioritizationFees`` or a Helius-style ``getPriorityFeeEstimate``, cached
per set of writable accounts. Configured by ``[execution.fees]`` (:class:`FeeSettings`); see
docs/FEES.md.
"""

from __future__ import annotations

from xorj_actors.fees._client import FeeClient, FeeThrottled, FeeUnavailable, parse_estimate, parse_levels, parse_recent_fees
from xorj_actors.fees._policy import FeePolicy, FeeSample, percentile
from xorj_actors.fees.settings import (
    DEFAULT_FEE_TIERS,
    MAX_FEE_ACCOUNTS,
    FeeProvider,
    FeeSettings,
    FeeTier,
    PriorityLevel,
)

__all__ = [
    "DEFAULT_FEE_TIERS",
    "MAX_FEE_ACCOUNTS",
    "FeeClient",
    "FeePolicy",
    "FeeProvider",
    "FeeSample",
    "FeeSettings",
    "FeeTier",
    "FeeThrottled",
    "FeeUnavailable",
    "PriorityLevel",
    "parse_estimate",
    "parse_levels",
    "parse_recent_fees",
    "percentile",
]
