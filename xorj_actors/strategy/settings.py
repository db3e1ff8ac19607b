"""``[strategy]``: where the StrategyFeed reads the ranked traders, how often, and the risk profiles."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from supervisors import register_immutable_type

__all__ = ["DEFAULT_PROFILES", "DEV_QUANT_API_KEY", "RiskProfile", "StrategySettings"]

#: The quantitative engine's API key in development when ``api_key_env`` is unset, on both ends:
#: the feed sends it and the localnet's quant engine accepts it. Public on purpose; production
#: refuses it.
DEV_QUANT_API_KEY = "xorj-localnet-dev-quant-key"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROFILE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class RiskProfile:
    """``[[strategy.profiles]]``: which traders a vault of this profile may copy.

    A vault copies the best-ranked trader whose trust score is strictly above
    ``min_trust_score``, and trades with at most ``slippage_bps`` of slippage.
    """

    name: str
    min_trust_score: float
    #: Largest slippage a trade of this profile accepts, in basis points (100 = 1 %).
    slippage_bps: int

    def validate(self) -> None:
        if not isinstance(self.name, str) or not _PROFILE_NAME.match(self.name):
            raise ValueError("name: 1 to 32 of lowercase letters, digits, '_', '-', starting with a letter")
        if not _finite(self.min_trust_score) or not 0 <= self.min_trust_score <= 100:
            raise ValueError(f"min_trust_score: must be a number in [0, 100], got {self.min_trust_score!r}")
        if isinstance(self.slippage_bps, bool) or not isinstance(self.slippage_bps, int):
            raise ValueError(f"slippage_bps: must be an integer, got {self.slippage_bps!r}")
        if not 1 <= self.slippage_bps <= 10_000:
            raise ValueError(f"slippage_bps: must be between 1 and 10000, got {self.slippage_bps}")


# Frozen and slotted with scalar fields: messages (a vault's) may carry a profile.
register_immutable_type(RiskProfile)

#: The issue's profiles: conservative above 95 (0.5 %), moderate above 90 (1 %), aggressive above 85 (2 %).
DEFAULT_PROFILES: tuple[RiskProfile, ...] = (
    RiskProfile("conservative", 95.0, 50),
    RiskProfile("moderate", 90.0, 100),
    RiskProfile("aggressive", 85.0, 200),
)


@dataclass(frozen=True, slots=True)
class StrategySettings:
    """``[strategy]``: the quantitative engine's ranked traders, polled by the StrategyFeed."""

    #: Base URL of the quantitative engine (``/internal/ranked-traders`` is appended).
    #: Empty: the localnet's quant service.
    url: str = ""
    #: Environment variable holding the API key (sent as ``X-API-Key``). Development falls back
    #: to the localnet's public key when it is unset; production refuses to start.
    api_key_env: str = "XORJ_QUANT_API_KEY"
    #: Seconds between polls after a good response.
    poll_interval_s: float = 300.0
    #: Seconds before the next poll after a rejected one (shorter: recover before going stale).
    retry_interval_s: float = 30.0
    #: Whole request (connect, headers, body) must finish within this.
    request_timeout_s: float = 10.0
    #: No good response for this long: the feed is stale and vaults start no new trades.
    stale_after_s: float = 900.0
    #: Allocation weights must sum to 1 within this.
    weight_tolerance: float = 1e-6
    #: A larger response body is refused unread.
    max_response_bytes: int = 4 * 1024 * 1024
    profiles: tuple[RiskProfile, ...] = DEFAULT_PROFILES

    def validate(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: must be empty or an http:// or https:// URL, got {self.url!r}")
        if self.url and any(c.isspace() for c in self.url):
            raise ValueError("url: must not contain whitespace")
        if not _ENV_NAME.match(self.api_key_env):
            raise ValueError("api_key_env: must be an environment variable name")
        for key in ("poll_interval_s", "retry_interval_s", "request_timeout_s", "stale_after_s"):
            value = getattr(self, key)
            if not _finite(value) or not 0 < value <= 86_400:
                raise ValueError(f"{key}: must be > 0 and <= 86400, got {value!r}")
        if self.retry_interval_s > self.poll_interval_s:
            raise ValueError("retry_interval_s: must be <= poll_interval_s")
        if self.stale_after_s <= self.poll_interval_s:
            # One late poll must not stop trading.
            raise ValueError("stale_after_s: must be > poll_interval_s")
        if not _finite(self.weight_tolerance) or not 0 < self.weight_tolerance <= 0.01:
            raise ValueError(f"weight_tolerance: must be in (0, 0.01], got {self.weight_tolerance!r}")
        if isinstance(self.max_response_bytes, bool) or not 1024 <= self.max_response_bytes <= 64 * 1024 * 1024:
            raise ValueError("max_response_bytes: must be between 1024 and 67108864")
        if not self.profiles:
            raise ValueError("profiles: at least one profile is required")
        for i, profile in enumerate(self.profiles):
            try:
                profile.validate()
            except ValueError as exc:
                raise ValueError(f"profiles[{i}].{exc}") from None
        names = [p.name for p in self.profiles]
        if len(set(names)) != len(names):
            raise ValueError("profiles: profile names must be distinct")

    def profile(self, name: str) -> RiskProfile:
        """The profile called ``name``; KeyError naming the configured ones otherwise."""
        for p in self.profiles:
            if p.name == name:
                return p
        raise KeyError(f"no profile {name!r} in [strategy] (configured: {', '.join(p.name for p in self.profiles)})")
