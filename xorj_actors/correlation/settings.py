"""``[correlation]``: correlated-exposure limits (kept apart from the actors: the config imports it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CorrelationSettings"]


@dataclass(frozen=True, slots=True)
class CorrelationSettings:
    """``[correlation]``: how token clusters are estimated and how much a cluster may hold (docs/RISK.md).

    Clusters are tokens linked by a pairwise Pearson correlation of log returns at or above
    ``threshold``, over the price watch's samples of the last ``window_s`` seconds.
    """

    enabled: bool = True
    #: Price samples (the price watch's, every ``[gateway] price_poll_s``) older than this are dropped.
    window_s: float = 3_600.0
    #: A pair needs at least this many aligned returns in the window, else its correlation is unknown.
    min_samples: int = 30
    #: Pairs at or above this correlation are linked; clusters are their connected components.
    threshold: float = 0.8
    #: An unknown pair (too few samples, a flat price) is linked only if this is true (conservative).
    unknown_correlated: bool = False
    #: The snapshot vaults read is recomputed this often.
    refresh_s: float = 60.0
    #: Largest share of a vault's value any one cluster may reach after its buys.
    per_vault_max_share: float = 0.6
    #: Largest USD value all vaults together may hold in one cluster (0: no engine-wide limit).
    global_max_usd: float = 0.0

    def validate(self) -> None:
        if not math.isfinite(self.window_s) or not 10 <= self.window_s <= 30 * 86_400:
            raise ValueError("window_s: must be between 10 and 2592000 seconds")
        if not 3 <= self.min_samples <= 1_000_000:
            raise ValueError("min_samples: must be between 3 and 1000000")
        if not math.isfinite(self.threshold) or not 0 < self.threshold <= 1:
            raise ValueError("threshold: must be in (0, 1]")
        if not math.isfinite(self.refresh_s) or not 1 <= self.refresh_s <= 86_400:
            raise ValueError("refresh_s: must be between 1 and 86400 seconds")
        if not math.isfinite(self.per_vault_max_share) or not 0 < self.per_vault_max_share <= 1:
            raise ValueError("per_vault_max_share: must be in (0, 1]")
        if not math.isfinite(self.global_max_usd) or not 0 <= self.global_max_usd <= 1e15:
            raise ValueError("global_max_usd: must be between 0 (no limit) and 1e15")
