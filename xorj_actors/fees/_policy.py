"""The fee policy, pure: a tier by value, a base price from recent fees, escalation to the cap."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from xorj_actors._settings import tier_of_value
from xorj_actors.fees.settings import FeeProvider, FeeSettings, FeeTier, PriorityLevel

__all__ = ["FeePolicy", "FeeSample", "percentile"]


def percentile(fees: Sequence[int], pct: int) -> int:
    """The nearest-rank ``pct``-th percentile (0-100) of ``fees``; 0 for no fees.

    Nearest rank always answers a fee that was paid, never an interpolation between two.
    """
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {pct}")
    if not fees:
        return 0
    ordered = sorted(fees)
    rank = max(1, math.ceil(pct * len(ordered) / 100))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class FeeSample:
    """What a provider answered for one set of writable accounts (micro-lamports per unit)."""

    #: Provider ``rpc``: each recent slot's fee (Agave's per-slot minimum for those accounts).
    slot_fees: tuple[int, ...] = ()
    #: Provider ``estimate``: the fee of each Helius level.
    levels: Mapping[PriorityLevel, int] = field(default_factory=dict)


class FeePolicy:
    """``[execution.fees]`` as functions: which tier, what base, what price for an attempt."""

    def __init__(self, settings: FeeSettings) -> None:
        settings.validate()
        self.settings = settings
        # Exact arithmetic: 1.5 ** n in floats could round a price one micro-lamport either way.
        self._factor = Fraction(str(settings.escalation))

    def tier_for(self, value_usd: float) -> FeeTier:
        """The tier of a trade worth ``value_usd``; a value that is not a finite number >= 0
        gets the highest tier (a bad value must not make a trade bid low)."""
        return tier_of_value(value_usd, self.settings.tiers)

    def base_for(self, tier: FeeTier, sample: FeeSample) -> int:
        """The tier's base price from ``sample``: its percentile of the per-slot fees, or its
        level of the estimate; a level the provider did not answer is a :class:`ValueError`."""
        if self.settings.provider is FeeProvider.RPC:
            return percentile(sample.slot_fees, tier.percentile)
        if tier.level not in sample.levels:
            raise ValueError(f"the estimate has no {tier.level.value} level")
        return sample.levels[tier.level]

    def escalate(self, base: int, attempt_no: int) -> int:
        """The price of attempt ``attempt_no`` (1 = the first) from ``base``, at most the cap.

        The first attempt pays the base; each later one (a new attempt after a certain expiry)
        pays ``escalation`` times more, rounded up, starting from at least the escalation floor.
        """
        if isinstance(attempt_no, bool) or not isinstance(attempt_no, int) or attempt_no < 1:
            raise ValueError(f"attempt_no must be an integer >= 1, got {attempt_no!r}")
        if isinstance(base, bool) or not isinstance(base, int) or base < 0:
            raise ValueError(f"base must be an integer >= 0, got {base!r}")
        cap = self.settings.cap_micro_lamports
        if attempt_no == 1:
            return min(base, cap)
        start = max(base, self.settings.escalation_floor_micro_lamports)
        price = start
        # Stepwise with an early stop: the cap binds long before a large attempt_no grows huge.
        for _ in range(attempt_no - 1):
            price = math.ceil(price * self._factor)
            if price >= cap:
                return cap
        return price

    def price_for(self, tier: FeeTier, attempt_no: int, sample: FeeSample) -> int:
        """Micro-lamports per compute unit for attempt ``attempt_no`` of a trade in ``tier``."""
        return self.escalate(self.base_for(tier, sample), attempt_no)
