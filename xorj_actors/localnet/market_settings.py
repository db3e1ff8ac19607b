"""Settings of the localnet's quote service, quantitative engine and block engine."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# The strategy feed owns the development key; the local quant engine accepts the same one.
from xorj_actors.strategy.settings import DEV_QUANT_API_KEY

__all__ = ["BlockEngineSettings", "DEV_QUANT_API_KEY", "QuantSettings", "QuoteSettings"]


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ValueError("port: must be between 0 and 65535")


def _check_clock(step_s: float, key: str) -> None:
    if not math.isfinite(step_s) or not 0.001 <= step_s <= 86_400:
        raise ValueError(f"{key}: must be between 0.001 and 86400 seconds")


@dataclass(frozen=True, slots=True)
class QuoteSettings:
    """``[localnet.quote]``: the quote service (Jupiter's APIs) and its market maker."""

    port: int = 0  # 0: a free port
    #: Seed of the price walks: same seed and same steps, same prices.
    seed: int = 1
    #: Market time one random-walk step represents (the walk's dt).
    step_s: float = 1.0
    #: Manual clock: prices step only on command (`PriceWalk.advance`, `POST /admin/advance`).
    manual_clock: bool = False
    #: A Swap API quote or an Ultra order is honoured only this long after it was given.
    quote_ttl_s: float = 30.0
    #: `slippageBps` when the request has none (Jupiter's default).
    default_slippage_bps: int = 50
    #: Volatility factor of a switched-on volatility spike.
    spike_multiplier: float = 20.0
    #: Swap API routes and Ultra orders ask for 4 x this many compute units.
    compute_unit_limit: int = 20_000
    compute_unit_price_micro_lamports: int = 1_000
    #: Quotes (and, apart, Ultra orders) kept in memory; beyond it the oldest are forgotten (refused).
    max_open_quotes: int = 100_000
    #: Environment variable holding the ``x-api-key`` the Jupiter-shaped paths demand (unset or
    #: empty: any key, or none, is accepted).
    api_key_env: str = "XORJ_LOCALNET_JUPITER_API_KEY"
    #: A provider's budget over all the Jupiter-shaped paths: more than ``rate_limit_requests``
    #: in any ``rate_limit_window_s`` (sliding) answers 429, as Jupiter does past a plan's limit.
    #: 0: no limit.
    rate_limit_requests: int = 0
    rate_limit_window_s: float = 1.0

    def validate(self) -> None:
        _check_port(self.port)
        if not 0 <= self.rate_limit_requests <= 1_000_000:
            raise ValueError("rate_limit_requests: must be between 0 (no limit) and 1000000")
        if not math.isfinite(self.rate_limit_window_s) or not 0 < self.rate_limit_window_s <= 3_600:
            raise ValueError("rate_limit_window_s: must be > 0 and <= 3600")
        _check_clock(self.step_s, "step_s")
        if not math.isfinite(self.quote_ttl_s) or not 0 < self.quote_ttl_s <= 3_600:
            raise ValueError("quote_ttl_s: must be > 0 and <= 3600")
        if not 0 <= self.default_slippage_bps <= 10_000:
            raise ValueError("default_slippage_bps: must be between 0 and 10000")
        if not math.isfinite(self.spike_multiplier) or not 1 <= self.spike_multiplier <= 1_000:
            raise ValueError("spike_multiplier: must be between 1 and 1000")
        if not 1 <= self.compute_unit_limit <= 1_400_000:
            raise ValueError("compute_unit_limit: must be between 1 and 1400000")
        if not 0 <= self.compute_unit_price_micro_lamports <= 10**12:
            raise ValueError("compute_unit_price_micro_lamports: must be between 0 and 1e12")
        if self.max_open_quotes < 1:
            raise ValueError("max_open_quotes: must be >= 1")
        if not self.api_key_env:
            raise ValueError("api_key_env: must name an environment variable")


@dataclass(frozen=True, slots=True)
class QuantSettings:
    """``[localnet.quant]``: the quantitative engine's ranked-traders endpoint."""

    port: int = 0  # 0: a free port
    #: Environment variable holding the API key; unset gives `DEV_QUANT_API_KEY`.
    api_key_env: str = "XORJ_QUANT_API_KEY"
    seed: int = 1
    scenario: Literal["steady", "rotation", "risk_off"] = "rotation"
    #: Market time between scenario rounds (traders' scores and allocations drift each round).
    round_s: float = 60.0
    #: Manual clock: rounds advance only on command (`QuantEngine.advance`, `POST /admin/advance`).
    manual_clock: bool = False
    traders: int = 20
    #: How long the `timeout` fault holds a request before answering (longer than any client).
    hang_s: float = 30.0

    def validate(self) -> None:
        _check_port(self.port)
        if not self.api_key_env:
            raise ValueError("api_key_env: must name an environment variable")
        _check_clock(self.round_s, "round_s")
        if not 1 <= self.traders <= 10_000:
            raise ValueError("traders: must be between 1 and 10000")
        if not math.isfinite(self.hang_s) or not 0 < self.hang_s <= 3_600:
            raise ValueError("hang_s: must be > 0 and <= 3600")


@dataclass(frozen=True, slots=True)
class BlockEngineSettings:
    """``[localnet.block_engine]``: the Jito-shaped block engine and its tip floor."""

    port: int = 0  # 0: a free port
    #: What the tip floor serves, in lamports: the 25th, 50th, 75th, 95th and 99th percentiles of
    #: landed tips and the EMA of the 50th (default: Jito's documented example answer).
    landed_tips_lamports: tuple[int, ...] = (6_001, 10_000, 36_197, 1_447_906, 10_007_999, 9_836)
    #: ``getInflightBundleStatuses`` looks back this far (Jito: five minutes); older is Invalid.
    lookback_s: float = 300.0
    #: Bundles remembered for the statuses; beyond it the oldest are forgotten (Invalid).
    max_bundles: int = 100_000

    def validate(self) -> None:
        _check_port(self.port)
        tips = self.landed_tips_lamports
        if len(tips) != 6 or not all(isinstance(t, int) and 0 <= t <= 10**12 for t in tips):
            raise ValueError("landed_tips_lamports: six integers between 0 and 1e12 (p25, p50, p75, p95, p99, ema p50)")
        if list(tips[:5]) != sorted(tips[:5]):
            raise ValueError("landed_tips_lamports: the five percentiles must not decrease")
        if not math.isfinite(self.lookback_s) or not 1 <= self.lookback_s <= 86_400:
            raise ValueError("lookback_s: must be between 1 and 86400 seconds")
        if not 1 <= self.max_bundles <= 10_000_000:
            raise ValueError("max_bundles: must be between 1 and 10000000")
