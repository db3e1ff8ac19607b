"""``[vaults]``: how many vaults run, how often they rebalance, and the limits of every trade plan."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["VaultSettings"]


@dataclass(frozen=True, slots=True)
class VaultSettings:
    """``[vaults]``: reconciliation limits (see docs/RECONCILIATION.md)."""

    #: Vault actors started (ids ``vault-0000`` ...).
    count: int = 8
    #: Seconds between rebalancing rounds.
    round_interval_s: float = 60.0
    #: A trade worth less than this (USD, at reference prices) is dust: not traded.
    min_trade_usd: float = 1.0
    #: A trade worth more than this (USD) is split into equal pieces or refused (``oversize``).
    max_trade_usd: float = 10_000.0
    #: ``split``: equal pieces of at most ``max_trade_usd``; ``refuse``: the trade is skipped.
    oversize: Literal["split", "refuse"] = "split"
    #: At most this many pieces per trade and round; what is left waits for the next round.
    max_split: int = 10
    #: Largest share of the vault's value any one volatile token may reach; target weights above
    #: it are capped and the excess stays in the stablecoin.
    max_concentration: float = 0.6
    #: Share (bps) of the sells' expected proceeds NOT counted when sizing the buys, so buys never
    #: spend stablecoin the sells may not bring (price impact, slippage). Keep it at least the
    #: largest slippage limit (bps) any risk profile allows.
    proceeds_haircut_bps: int = 100
    #: Risk profile of vault ``i``: ``profiles[i % len]`` by name (``[[strategy.profiles]]``); empty: all of them in turn.
    profiles: tuple[str, ...] = ()
    #: Outcomes not heard this long after a hand-over are asked for again (same trade ids).
    outcome_overdue_s: float = 120.0
    #: A balance snapshot not answered this long ends the round (skipped; the next one reads again).
    read_timeout_s: float = 30.0

    def validate(self) -> None:
        if not 0 <= self.count <= 100_000:
            raise ValueError("count: must be between 0 and 100000")
        if not math.isfinite(self.round_interval_s) or not 0.1 <= self.round_interval_s <= 86_400:
            raise ValueError("round_interval_s: must be between 0.1 and 86400 seconds")
        if not math.isfinite(self.min_trade_usd) or self.min_trade_usd <= 0:
            raise ValueError("min_trade_usd: must be a finite number > 0")
        if not math.isfinite(self.max_trade_usd) or self.max_trade_usd > 1e12:
            raise ValueError("max_trade_usd: must be a finite number <= 1e12")
        if self.max_trade_usd < 2 * self.min_trade_usd:
            # Split pieces are at least half of max_trade_usd: they must not be dust themselves.
            raise ValueError("max_trade_usd: must be at least twice min_trade_usd")
        if self.oversize not in ("split", "refuse"):
            raise ValueError("oversize: must be 'split' or 'refuse'")
        if not 1 <= self.max_split <= 1_000:
            raise ValueError("max_split: must be between 1 and 1000")
        if not math.isfinite(self.max_concentration) or not 0 < self.max_concentration <= 1:
            raise ValueError("max_concentration: must be in (0, 1]")
        if not math.isfinite(self.read_timeout_s) or not 0.5 <= self.read_timeout_s <= 600:
            raise ValueError("read_timeout_s: must be between 0.5 and 600 seconds")
        if not math.isfinite(self.outcome_overdue_s) or not 1 <= self.outcome_overdue_s <= 3_600:
            raise ValueError("outcome_overdue_s: must be between 1 and 3600 seconds")
        if not 0 <= self.proceeds_haircut_bps <= 5_000:
            raise ValueError("proceeds_haircut_bps: must be between 0 and 5000")
