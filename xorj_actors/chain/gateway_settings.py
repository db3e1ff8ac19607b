"""``[gateway]``: the RPC gateway's batching and caching (kept apart from the actor: the config imports it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GatewaySettings"]


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """``[gateway]``: batching and caching of the vaults' reads."""

    batch_window_s: float = 0.005
    price_max_age_s: float = 1.0
    request_timeout_s: float = 10.0
    #: Prices of every traded mint are read this often for the market-volatility breaker (0: never).
    price_poll_s: float = 1.0

    def validate(self) -> None:
        if not 0 <= self.batch_window_s <= 1:
            raise ValueError("batch_window_s: must be between 0 and 1 second")
        if not 0 <= self.price_max_age_s <= 60:
            raise ValueError("price_max_age_s: must be between 0 and 60 seconds")
        if not 0 <= self.price_poll_s <= 60:
            raise ValueError("price_poll_s: must be between 0 and 60 seconds")
        if not 0 < self.request_timeout_s <= 120:
            raise ValueError("request_timeout_s: must be in (0, 120] seconds")
